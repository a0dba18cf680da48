#!/usr/bin/env python3
"""Offline checks of deploy/ that a JSON-schema validation cannot make.

Called by deploy/validate.sh (with the Python of its venv, which has PyYAML):

  validate_checks.py roots DEPLOY_DIR        print the kustomization directories
  validate_checks.py refs DEPLOY_DIR         every kustomization names only existing
                                             files inside its own directory
  validate_checks.py resources DEPLOY_DIR    print every YAML file listed in `resources:`
  validate_checks.py render KUSTOMIZATION_DIR
                                             print the rendered objects (stand-in for
                                             `kustomize build` when neither kustomize nor
                                             kubectl is installed; no name hashes)
  validate_checks.py check --render FILE --deploy-dir DIR [--sub-render FILE ...]
                                             cross-object consistency of the full
                                             rendering, the daemon's requirements, the
                                             Prometheus config, Grafana's provisioning
                                             and the dashboards, the Dockerfile

Every failure is printed as "FAIL: ..." and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
# Keys of a kustomization this repository uses; the fallback renderer knows only these.
KNOWN_KUSTOMIZATION_KEYS = {
    "apiVersion", "kind", "resources", "configMapGenerator", "generatorOptions",
}
# Grafana's rule for uids (util.IsValidShortUID); enforced for datasources since v12.
GRAFANA_UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
GRAFANA_BUILTIN_DS_UIDS = {"-- Grafana --", "-- Mixed --", "-- Dashboard --", "grafana"}
READ_VERBS = {"get", "list", "watch"}


class Checker:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passes = 0

    def fail(self, msg: str) -> None:
        self.failures.append(msg)
        print(f"FAIL: {msg}")

    def ok(self, msg: str) -> None:
        self.passes += 1
        print(f"ok: {msg}")

    def expect(self, cond: bool, ok_msg: str, fail_msg: str) -> bool:
        if cond:
            self.ok(ok_msg)
        else:
            self.fail(fail_msg)
        return cond

    def exit_code(self) -> int:
        return 1 if self.failures else 0


# ----------------------------------------------------------------------------------
# kustomizations


def kustomization_file(d: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (d / name).is_file():
            return d / name
    return None


def kustomization_roots(deploy_dir: Path) -> list[Path]:
    roots = []
    for dirpath, dirnames, _ in os.walk(deploy_dir):
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        if kustomization_file(Path(dirpath)):
            roots.append(Path(dirpath))
    return roots


def load_kustomization(d: Path) -> dict:
    f = kustomization_file(d)
    if f is None:
        raise SystemExit(f"FAIL: no kustomization file in {d}")
    with open(f, encoding="utf-8") as fh:
        k = yaml.safe_load(fh) or {}
    if not isinstance(k, dict):
        raise SystemExit(f"FAIL: {f} is not a YAML mapping")
    return k


def generator_files(gen: dict) -> list[tuple[str, str]]:
    """(key, relative path) of a generator's `files:` (entries "path" or "key=path")."""
    out = []
    for entry in gen.get("files") or []:
        key, _, path = entry.rpartition("=")
        out.append((key or os.path.basename(path), path))
    return out


def inside(root: Path, p: Path) -> bool:
    try:
        p.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def check_refs(deploy_dir: Path, c: Checker) -> None:
    for root in kustomization_roots(deploy_dir):
        kfile = kustomization_file(root)
        rel = kfile.relative_to(deploy_dir.parent)
        k = load_kustomization(root)
        if k.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or k.get("kind") != "Kustomization":
            c.fail(f"{rel}: apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization")
        unknown = set(k) - KNOWN_KUSTOMIZATION_KEYS
        if unknown:
            c.fail(f"{rel}: keys {sorted(unknown)} are not understood by validate_checks.py "
                   "(its fallback renderer and reference checks); extend it")
        n = 0
        for r in k.get("resources") or []:
            n += 1
            if "://" in r or r.startswith("github.com/"):
                c.fail(f"{rel}: remote resource {r!r}: deploy/ must be self-contained")
                continue
            p = root / r
            if p.is_dir():
                if not kustomization_file(p):
                    c.fail(f"{rel}: resource directory {r!r} has no kustomization file")
            elif p.is_file():
                if not inside(root, p):
                    c.fail(f"{rel}: resource file {r!r} is outside {root.name}/ (kustomize refuses it)")
            else:
                c.fail(f"{rel}: resource {r!r} does not exist")
        for gen in k.get("configMapGenerator") or []:
            for _, path in generator_files(gen):
                n += 1
                p = root / path
                if not p.is_file():
                    c.fail(f"{rel}: configMapGenerator {gen.get('name')!r}: file {path!r} does not exist")
                elif not inside(root, p):
                    c.fail(f"{rel}: configMapGenerator {gen.get('name')!r}: file {path!r} is outside "
                           f"{root.name}/ (kustomize refuses it)")
        c.ok(f"{rel}: its {n} references exist inside its directory")


def resource_files(deploy_dir: Path) -> list[Path]:
    files = []
    for root in kustomization_roots(deploy_dir):
        for r in load_kustomization(root).get("resources") or []:
            p = root / r
            if p.is_file():
                files.append(p)
    return files


def render(root: Path) -> list[dict]:
    """What `kustomize build` makes of the features used here, minus name hashes."""
    k = load_kustomization(root)
    docs: list[dict] = []
    for r in k.get("resources") or []:
        p = root / r
        if p.is_dir():
            docs.extend(render(p))
        else:
            with open(p, encoding="utf-8") as fh:
                docs.extend(d for d in yaml.safe_load_all(fh) if d)
    opts = k.get("generatorOptions") or {}
    for gen in k.get("configMapGenerator") or []:
        labels = dict(opts.get("labels") or {})
        labels.update((gen.get("options") or {}).get("labels") or {})
        meta = {"name": gen["name"]}
        if gen.get("namespace"):
            meta["namespace"] = gen["namespace"]
        if labels:
            meta["labels"] = labels
        data = {}
        for key, path in generator_files(gen):
            data[key] = (root / path).read_text(encoding="utf-8")
        for lit in gen.get("literals") or []:
            key, _, value = lit.partition("=")
            data[key] = value
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})
    return docs


# ----------------------------------------------------------------------------------
# rendered objects


class Objects:
    def __init__(self, docs: list[dict]) -> None:
        self.docs = docs
        self.by_key: dict[tuple[str, str, str], dict] = {}
        for d in docs:
            m = d.get("metadata") or {}
            self.by_key[(d.get("kind"), m.get("namespace", ""), m.get("name"))] = d

    def get(self, kind: str, ns: str, name: str) -> dict | None:
        return self.by_key.get((kind, ns if kind not in CLUSTER_SCOPED else "", name))

    def of_kind(self, *kinds: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") in kinds]


def load_docs(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d]


def ns_of(d: dict) -> str:
    return (d.get("metadata") or {}).get("namespace", "")


def name_of(d: dict) -> str:
    return (d.get("metadata") or {}).get("name", "")


def label_of(d: dict) -> str:
    ns = ns_of(d)
    return f"{d.get('kind')} {ns + '/' if ns else ''}{name_of(d)}"


def pod_spec(w: dict) -> dict:
    return w["spec"]["template"]["spec"]


def containers(spec: dict, init: bool = True) -> list[dict]:
    return (spec.get("initContainers") or [] if init else []) + (spec.get("containers") or [])


def resolve_port(container: dict, port) -> int | None:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def mount_source(spec: dict, container: dict, path: str) -> tuple[dict, dict] | None:
    """(volumeMount, volume) of the mount at `path` or at its closest ancestor."""
    best = None
    for vm in container.get("volumeMounts") or []:
        mp = vm["mountPath"].rstrip("/") or "/"
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"]):
                best = vm
    if best is None:
        return None
    vol = next((v for v in spec.get("volumes") or [] if v["name"] == best["name"]), None)
    return (best, vol) if vol else None


def configmap_data(objs: Objects, ns: str, vol: dict) -> dict | None:
    cm = objs.get("ConfigMap", ns, vol["configMap"]["name"])
    return None if cm is None else (cm.get("data") or {})


def check_generic(objs: Objects, c: Checker, where: str, require_optional: bool) -> None:
    """Consistency any cluster would reject or misbehave on, for one rendering."""
    namespaces = {name_of(d) for d in objs.of_kind("Namespace")}
    bad = [label_of(d) for d in objs.docs
           if d.get("kind") not in CLUSTER_SCOPED and ns_of(d) not in namespaces]
    c.expect(not bad, f"{where}: every namespaced object is in a namespace it creates",
             f"{where}: objects without a namespace created here: {bad}")

    for w in objs.of_kind("Deployment", "DaemonSet", "StatefulSet"):
        lw, ns, spec = f"{where}: {label_of(w)}", ns_of(w), pod_spec(w)
        sel = (w["spec"].get("selector") or {}).get("matchLabels") or {}
        tlabels = (w["spec"]["template"].get("metadata") or {}).get("labels") or {}
        c.expect(sel and all(tlabels.get(k) == v for k, v in sel.items()),
                 f"{lw}: selector matches its pod labels",
                 f"{lw}: selector {sel} does not match pod labels {tlabels}")
        sa = spec.get("serviceAccountName")
        if sa:
            c.expect(objs.get("ServiceAccount", ns, sa) is not None,
                     f"{lw}: ServiceAccount {sa} exists",
                     f"{lw}: ServiceAccount {sa} is not created here")
        vols = {v["name"]: v for v in spec.get("volumes") or []}
        used = set()
        for ct in containers(spec):
            paths = [vm["mountPath"] for vm in ct.get("volumeMounts") or []]
            if len(paths) != len(set(paths)):
                c.fail(f"{lw}: container {ct['name']} mounts the same path twice")
            for vm in ct.get("volumeMounts") or []:
                used.add(vm["name"])
                if vm["name"] not in vols:
                    c.fail(f"{lw}: container {ct['name']} mounts undefined volume {vm['name']}")
                if vm.get("mountPropagation") == "Bidirectional" and not (
                        ct.get("securityContext") or {}).get("privileged"):
                    c.fail(f"{lw}: Bidirectional propagation on {vm['mountPath']} needs a privileged container")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                hg = (ct.get(probe) or {}).get("httpGet")
                if hg and resolve_port(ct, hg["port"]) is None:
                    c.fail(f"{lw}: {probe} of {ct['name']} uses unknown port {hg['port']!r}")
        unused = set(vols) - used
        if unused:
            c.fail(f"{lw}: volumes never mounted: {sorted(unused)}")
        for v in vols.values():
            if "configMap" in v:
                optional = v["configMap"].get("optional", False)
                if (require_optional or not optional) and configmap_data(objs, ns, v) is None:
                    c.fail(f"{lw}: volume {v['name']} needs ConfigMap {v['configMap']['name']}, not created here")
        ann = (w["spec"]["template"].get("metadata") or {}).get("annotations") or {}
        if ann.get("prometheus.io/scrape") == "true":
            ports = {p.get("containerPort") for ct in containers(spec, init=False) for p in ct.get("ports") or []}
            c.expect(str(ann.get("prometheus.io/port")).isdigit() and int(ann["prometheus.io/port"]) in ports,
                     f"{lw}: prometheus.io/port {ann.get('prometheus.io/port')} is a container port",
                     f"{lw}: prometheus.io/port {ann.get('prometheus.io/port')!r} is not one of its ports {sorted(ports)}")
        c.ok(f"{lw}: volumes, mounts and probe ports are consistent")

    for s in objs.of_kind("Service"):
        ls, sel = f"{where}: {label_of(s)}", s["spec"].get("selector") or {}
        pods = [w for w in objs.of_kind("Deployment", "DaemonSet", "StatefulSet")
                if ns_of(w) == ns_of(s) and sel and all(
                    ((w["spec"]["template"].get("metadata") or {}).get("labels") or {}).get(k) == v
                    for k, v in sel.items())]
        if not c.expect(bool(pods), f"{ls}: selects {', '.join(name_of(p) for p in pods)}",
                        f"{ls}: selector {sel} matches no workload"):
            continue
        for port in s["spec"].get("ports") or []:
            tp = port.get("targetPort", port.get("port"))
            if not any(resolve_port(ct, tp) for p in pods for ct in containers(pod_spec(p), init=False)):
                c.fail(f"{ls}: targetPort {tp!r} is no port of the selected pods")

    for b in objs.of_kind("RoleBinding", "ClusterRoleBinding"):
        lb, ref = f"{where}: {label_of(b)}", b["roleRef"]
        role = objs.get(ref["kind"], ns_of(b), ref["name"])
        c.expect(role is not None, f"{lb}: {ref['kind']} {ref['name']} exists",
                 f"{lb}: {ref['kind']} {ref['name']} is not created here")
        for sub in b.get("subjects") or []:
            if sub.get("kind") == "ServiceAccount" and objs.get(
                    "ServiceAccount", sub.get("namespace", ns_of(b)), sub["name"]) is None:
                c.fail(f"{lb}: subject ServiceAccount {sub.get('namespace')}/{sub['name']} is not created here")


def rules_for_sa(objs: Objects, ns: str, sa: str) -> list[tuple[str, dict]]:
    out = []
    for b in objs.of_kind("RoleBinding", "ClusterRoleBinding"):
        for sub in b.get("subjects") or []:
            if sub.get("kind") == "ServiceAccount" and sub["name"] == sa and sub.get("namespace", ns_of(b)) == ns:
                role = objs.get(b["roleRef"]["kind"], ns_of(b), b["roleRef"]["name"]) or {}
                out.extend((label_of(b), r) for r in role.get("rules") or [])
    return out


def flag_value(cmd: list[str], flag: str) -> str | None:
    for i, a in enumerate(cmd):
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
        if a == flag and i + 1 < len(cmd):
            return cmd[i + 1]
    return None


def check_daemon(objs: Objects, c: Checker, deploy_dir: Path) -> None:
    dss = objs.of_kind("DaemonSet")
    if not c.expect(len(dss) == 1, "one DaemonSet (the gadget daemon)", f"expected one DaemonSet, found {len(dss)}"):
        return
    ds = dss[0]
    spec, ns, ld = pod_spec(ds), ns_of(ds), label_of(ds)
    ct = spec["containers"][0]
    cmd = list(ct.get("command") or []) + list(ct.get("args") or [])
    sc = ct.get("securityContext") or {}
    ann = (ds["spec"]["template"].get("metadata") or {}).get("annotations") or {}

    c.expect(cmd[:2] == ["gadget", "daemon"], f"{ld}: runs `gadget daemon`", f"{ld}: command {cmd} is not `gadget daemon …`")
    listen = flag_value(cmd, "--otel-metrics-listen-address") or ""
    port = listen.rpartition(":")[2]
    c.expect(port.isdigit() and ann.get("prometheus.io/port") == port,
             f"{ld}: listens on :{port}, the port Prometheus is told to scrape",
             f"{ld}: --otel-metrics-listen-address {listen!r} and prometheus.io/port {ann.get('prometheus.io/port')!r} disagree")
    c.expect(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/path") == "/metrics",
             f"{ld}: prometheus.io/scrape and /path annotations as IG's DaemonSet",
             f"{ld}: prometheus.io annotations {ann} are not scrape=true, path=/metrics")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        hg = (ct.get(probe) or {}).get("httpGet") or {}
        c.expect(hg.get("path") == path and str(resolve_port(ct, hg.get("port"))) == port,
                 f"{ld}: {probe} GET {path} on :{port}",
                 f"{ld}: {probe} must be GET {path} on the metrics port {port}, is {hg}")
    env = {e["name"]: e for e in ct.get("env") or []}
    c.expect(((env.get("NODE_NAME") or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName",
             f"{ld}: NODE_NAME from the downward API (spec.nodeName)",
             f"{ld}: env NODE_NAME must come from fieldRef spec.nodeName")
    c.expect(sc.get("privileged") is True, f"{ld}: privileged (eBPF)", f"{ld}: container is not privileged")
    c.expect(not spec.get("hostPID"), f"{ld}: hostPID off", f"{ld}: hostPID is on, the daemon does not need it")
    res = ct.get("resources") or {}
    c.expect(all(k in (res.get(kind) or {}) for kind in ("requests", "limits") for k in ("cpu", "memory")),
             f"{ld}: cpu/memory requests and limits set", f"{ld}: resources {res} lack cpu/memory requests or limits")
    c.expect(any(t.get("operator") == "Exists" and not t.get("key") and not t.get("effect")
                 for t in spec.get("tolerations") or []),
             f"{ld}: tolerates every taint (control plane included)", f"{ld}: tolerations do not cover every node")

    want = {  # mountPath: (readOnly, mountPropagation)
        "/sys/kernel/btf": (True, None), "/sys/kernel/tracing": (False, None),
        "/sys/kernel/debug": (False, None), "/sys/fs/bpf": (False, "Bidirectional"),
        "/sys/block": (True, None), "/sys/class/block": (True, None),
    }
    state_dir = flag_value(cmd, "--state-dir")
    if c.expect(bool(state_dir), f"{ld}: --state-dir={state_dir}", f"{ld}: no --state-dir flag"):
        want[state_dir] = (False, None)
    vols = {v["name"]: v for v in spec.get("volumes") or []}
    for vm in ct.get("volumeMounts") or []:
        if vm["mountPath"] not in want:
            continue
        ro, prop = want.pop(vm["mountPath"])
        hp = (vols.get(vm["name"]) or {}).get("hostPath") or {}
        good = (hp.get("path") == vm["mountPath"] and bool(vm.get("readOnly")) == ro
                and vm.get("mountPropagation") == prop)
        if vm["mountPath"] == state_dir:
            good = good and hp.get("type") == "DirectoryOrCreate"
        c.expect(good, f"{ld}: host {vm['mountPath']} mounted{' read-only' if ro else ''}{', ' + prop if prop else ''}",
                 f"{ld}: mount {vm['mountPath']} must be hostPath {vm['mountPath']} readOnly={ro} "
                 f"propagation={prop}{' type=DirectoryOrCreate' if vm['mountPath'] == state_dir else ''}")
    c.expect(not want, f"{ld}: every host mount present", f"{ld}: host mounts missing: {sorted(want)}")

    sa = spec.get("serviceAccountName", "default")
    rules = rules_for_sa(objs, ns, sa)
    too_much = [(b, r) for b, r in rules
                if set(r.get("verbs") or []) - READ_VERBS
                or set(r.get("resources") or []) - {"pods", "nodes"}
                or set(r.get("apiGroups") or []) - {""}]
    c.expect(not too_much, f"{ld}: ServiceAccount {sa} has {len(rules)} rule(s), none beyond reading pods/nodes",
             f"{ld}: ServiceAccount {sa} gets more than read access to pods/nodes: {too_much}")

    # The Dockerfile's default command is the DaemonSet's.
    dockerfile = deploy_dir / "Dockerfile"
    m = re.search(r"^CMD\s+(\[.*\])\s*$", dockerfile.read_text(encoding="utf-8"), re.M) if dockerfile.is_file() else None
    c.expect(bool(m) and json.loads(m.group(1)) == cmd, f"{ld}: command equals deploy/Dockerfile's CMD",
             f"{ld}: command {cmd} differs from deploy/Dockerfile's CMD {m.group(1) if m else None}")


def check_prometheus(objs: Objects, c: Checker) -> dict | None:
    deps = [d for d in objs.of_kind("Deployment")
            if any("prometheus" in ct.get("image", "") for ct in pod_spec(d)["containers"])]
    if not c.expect(len(deps) == 1, "one Prometheus Deployment", f"expected one Prometheus Deployment, found {len(deps)}"):
        return None
    dep = deps[0]
    spec, ns, ct = pod_spec(dep), ns_of(dep), pod_spec(dep)["containers"][0]
    cfg_path = flag_value(ct.get("args") or [], "--config.file") or "/etc/prometheus/prometheus.yml"
    src = mount_source(spec, ct, cfg_path)
    data = configmap_data(objs, ns, src[1]) if src and "configMap" in src[1] else None
    key = os.path.relpath(cfg_path, src[0]["mountPath"]) if src else None
    if not c.expect(data is not None and key in data, f"Prometheus reads {cfg_path} from its ConfigMap",
                    f"Prometheus --config.file {cfg_path} is not a key of a ConfigMap mounted there"):
        return None
    text = data[key]
    cfg = yaml.safe_load(text)
    c.expect((cfg.get("global") or {}).get("scrape_interval") == "15s", "Prometheus scrape_interval 15s",
             f"Prometheus global.scrape_interval is {(cfg.get('global') or {}).get('scrape_interval')!r}, not 15s")
    pod_jobs = [j for j in cfg.get("scrape_configs") or []
                if any(sd.get("role") == "pod" for sd in j.get("kubernetes_sd_configs") or [])]
    if c.expect(bool(pod_jobs), "Prometheus has a kubernetes_sd_configs role: pod job",
                "Prometheus has no kubernetes_sd_configs role: pod job"):
        for job in pod_jobs:
            rl = job.get("relabel_configs") or []
            srcs = {s for r in rl for s in r.get("source_labels") or []}
            need = {f"__meta_kubernetes_pod_annotation_prometheus_io_{a}" for a in ("scrape", "port", "path")}
            c.expect(need <= srcs and any(r.get("action") == "keep" and r.get("source_labels") ==
                                         ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] for r in rl),
                     f"job {job['job_name']}: honours prometheus.io/scrape, /port and /path",
                     f"job {job['job_name']}: relabelling misses {sorted(need - srcs)} or the keep on scrape")
            clash = [r for r in rl if r.get("target_label") == "node" or r.get("action") in ("labelmap",)]
            c.expect(not clash,
                     f"job {job['job_name']}: adds no `node` target label (the gadget's own node label stays `node`)",
                     f"job {job['job_name']}: {clash} can create a target label `node`, which renames the "
                     "gadget's node label to exported_node and breaks the per-node dashboard")
            c.expect(any(r.get("target_label") == "kubernetes_node" for r in rl),
                     f"job {job['job_name']}: the pod's node as kubernetes_node",
                     f"job {job['job_name']}: no kubernetes_node label")
    promtool = shutil.which("promtool")
    if promtool:
        def promtool_check(config_text: str) -> subprocess.CompletedProcess:
            with tempfile.TemporaryDirectory() as td:
                p = Path(td) / "prometheus.yml"
                p.write_text(config_text, encoding="utf-8")
                r = subprocess.run([promtool, "check", "config", "--syntax-only", str(p)],
                                   capture_output=True, text=True)
                if r.returncode != 0 and "unknown long flag" in r.stderr + r.stdout:
                    r = subprocess.run([promtool, "check", "config", str(p)], capture_output=True, text=True)
                return r

        r = promtool_check(text)
        what = "promtool check config"
        if r.returncode != 0 and "field kubernetes_sd_configs not found" in r.stdout + r.stderr:
            # Debian's prometheus package is built without Kubernetes discovery. Check the
            # rest (relabel regexes, fields, intervals) with the discovery swapped out.
            stripped = yaml.safe_load(text)
            for job in stripped.get("scrape_configs") or []:
                if job.pop("kubernetes_sd_configs", None) is not None:
                    job["static_configs"] = [{"targets": []}]
            r = promtool_check(yaml.safe_dump(stripped, sort_keys=False))
            what += " (this promtool lacks Kubernetes discovery: checked with kubernetes_sd_configs swapped for static_configs)"
        c.expect(r.returncode == 0, f"{what}: {(r.stdout.strip().splitlines() or [''])[-1].strip()}",
                 f"{what} failed: {r.stdout}{r.stderr}")
    else:
        print("note: promtool not installed, Prometheus config checked structurally only")
    sa = spec.get("serviceAccountName", "default")
    can = any({"list", "watch"} <= set(r.get("verbs") or []) and "pods" in (r.get("resources") or [])
              for _, r in rules_for_sa(objs, ns, sa))
    c.expect(can, f"Prometheus ServiceAccount {sa} may list and watch pods",
             f"Prometheus ServiceAccount {sa} may not list+watch pods (pod discovery)")
    return dep


def walk_datasource_refs(node, path="$"):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                yield path + ".datasource", v
            yield from walk_datasource_refs(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk_datasource_refs(v, f"{path}[{i}]")


def run_init_script(objs: Objects, spec: dict, ns: str, init: dict, c: Checker, workdir: Path) -> dict[str, Path] | None:
    """Runs an init container's `sh -c` script with its mounts mapped into workdir."""
    cmd = list(init.get("command") or []) + list(init.get("args") or [])
    if len(cmd) != 3 or cmd[0] not in ("sh", "/bin/sh") or cmd[1] != "-c":
        c.fail(f"init container {init['name']}: command must be [sh, -c, SCRIPT] to be checked")
        return None
    script = cmd[2]
    mapping: dict[str, Path] = {}
    for vm in init.get("volumeMounts") or []:
        if vm["mountPath"] in script:
            c.fail(f"init container {init['name']}: script names {vm['mountPath']} itself; "
                   "it must take its paths from env (so it can be run offline)")
            return None
        local = workdir / vm["name"]
        local.mkdir(parents=True, exist_ok=True)
        vol = next(v for v in spec["volumes"] if v["name"] == vm["name"])
        if "configMap" in vol:
            for key, value in (configmap_data(objs, ns, vol) or {}).items():
                (local / key).write_text(value, encoding="utf-8")
        mapping[vm["mountPath"]] = local
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for e in init.get("env") or []:
        value = e.get("value", "")
        for mp, local in mapping.items():
            if value == mp or value.startswith(mp + "/"):
                value = str(local) + value[len(mp):]
        env[e["name"]] = value
    r = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, cwd=workdir)
    if not c.expect(r.returncode == 0, f"init container {init['name']}: script runs ({r.stdout.strip().count(chr(10)) + 1 if r.stdout.strip() else 0} line(s) of output)",
                    f"init container {init['name']}: script failed: {r.stderr}"):
        return None
    return mapping


def check_grafana(objs: Objects, c: Checker, deploy_dir: Path, prometheus: dict | None) -> None:
    deps = [d for d in objs.of_kind("Deployment")
            if any("grafana" in ct.get("image", "") for ct in pod_spec(d)["containers"])]
    if not c.expect(len(deps) == 1, "one Grafana Deployment", f"expected one Grafana Deployment, found {len(deps)}"):
        return
    dep = deps[0]
    spec, ns = pod_spec(dep), ns_of(dep)
    ct = next(x for x in spec["containers"] if "grafana" in x.get("image", ""))
    env = {e["name"]: e.get("value") for e in ct.get("env") or []}
    prov = env.get("GF_PATHS_PROVISIONING") or "/etc/grafana/provisioning"

    def provisioning_files(sub: str) -> list[dict]:
        src = mount_source(spec, ct, f"{prov}/{sub}")
        if not src or "configMap" not in src[1] or src[0]["mountPath"] != f"{prov}/{sub}":
            c.fail(f"Grafana: no ConfigMap mounted at {prov}/{sub}")
            return []
        data = configmap_data(objs, ns, src[1]) or {}
        files = [yaml.safe_load(v) for k, v in data.items() if k.endswith((".yaml", ".yml"))]
        c.expect(bool(files), f"Grafana: {prov}/{sub} holds {sorted(data)}", f"Grafana: {prov}/{sub} has no YAML file")
        return files

    datasources = [ds for f in provisioning_files("datasources") for ds in f.get("datasources") or []]
    uids = {ds.get("uid"): ds for ds in datasources}
    for ds in datasources:
        c.expect(bool(GRAFANA_UID.match(str(ds.get("uid", "")))), f"Grafana datasource uid {ds.get('uid')!r} is valid",
                 f"Grafana datasource uid {ds.get('uid')!r} is missing or not [a-zA-Z0-9_-]{{1,40}} (Grafana 12 rejects it)")
        m = re.match(r"^https?://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?(?::(\d+))?/?$", ds.get("url", ""))
        svc = objs.get("Service", m.group(2), m.group(1)) if m else None
        ok = svc is not None and any(str(p["port"]) == (m.group(3) or "80") for p in svc["spec"]["ports"])
        if ok and prometheus is not None and ds.get("type") == "prometheus":
            sel = svc["spec"].get("selector") or {}
            plabels = (prometheus["spec"]["template"].get("metadata") or {}).get("labels") or {}
            ok = ns_of(svc) == ns_of(prometheus) and all(plabels.get(k) == v for k, v in sel.items())
        c.expect(ok, f"Grafana datasource {ds.get('name')!r} points at Service {m.group(1) if m else '?'}:{m.group(3) if m else '?'}",
                 f"Grafana datasource {ds.get('name')!r} url {ds.get('url')!r} is not a Service:port here (selecting Prometheus)")

    providers = [p for f in provisioning_files("dashboards") for p in f.get("providers") or []]
    repo_dash = sorted((deploy_dir / "dashboards").glob("*.json"))
    if not c.expect(bool(providers), f"Grafana: {len(providers)} dashboard provider(s)", "Grafana: no dashboard provider"):
        return
    with tempfile.TemporaryDirectory() as td:
        for prov_cfg in providers:
            path = (prov_cfg.get("options") or {}).get("path", "")
            src = mount_source(spec, ct, path)
            if not c.expect(src is not None, f"Grafana: provider {prov_cfg.get('name')!r} path {path} is mounted",
                            f"Grafana: provider {prov_cfg.get('name')!r} path {path!r} is not on a volume"):
                continue
            vm, vol = src
            rel = os.path.relpath(path, vm["mountPath"])
            if "configMap" in vol:
                data = configmap_data(objs, ns, vol) or {}
                out = Path(td) / "cm"
                out.mkdir(exist_ok=True)
                for k, v in data.items():
                    (out / k).write_text(v, encoding="utf-8")
                result_dir = out / rel
            else:
                writers = [i for i in spec.get("initContainers") or []
                           if any(m["name"] == vol["name"] for m in i.get("volumeMounts") or [])]
                if not c.expect(len(writers) == 1, f"Grafana: init container {writers[0]['name'] if writers else ''} fills volume {vol['name']}",
                                f"Grafana: volume {vol['name']} under {path} is filled by {len(writers)} init containers, expected 1"):
                    continue
                mapping = run_init_script(objs, spec, ns, writers[0], c, Path(td) / "init")
                if mapping is None:
                    continue
                init_mp = next(m["mountPath"] for m in writers[0]["volumeMounts"] if m["name"] == vol["name"])
                result_dir = mapping[init_mp] / rel
            got = sorted(p.name for p in result_dir.glob("*.json")) if result_dir.is_dir() else []
            c.expect(got == [p.name for p in repo_dash],
                     f"Grafana: {path} will hold exactly deploy/dashboards' {got}",
                     f"Grafana: {path} would hold {got}, deploy/dashboards has {[p.name for p in repo_dash]}")
            home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
            if home and os.path.dirname(home) == path.rstrip("/"):
                c.expect(os.path.basename(home) in got, f"Grafana: home dashboard {os.path.basename(home)} is provisioned",
                         f"Grafana: GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH {home} is not provisioned")
            for name in got:
                f = result_dir / name
                try:
                    dash = json.loads(f.read_text(encoding="utf-8"))
                except json.JSONDecodeError as e:
                    c.fail(f"Grafana: provisioned {name} is not JSON after the init script: {e}")
                    continue
                bad = []
                n = 0
                for where, ref in walk_datasource_refs(dash):
                    n += 1
                    uid, typ = (ref.get("uid"), ref.get("type")) if isinstance(ref, dict) else (ref, None)
                    if uid in GRAFANA_BUILTIN_DS_UIDS or typ in ("grafana", "datasource"):
                        continue
                    ds = uids.get(uid) or next((d for d in datasources if d.get("name") == uid), None)
                    if ds is None or (typ and typ != ds.get("type")):
                        bad.append(f"{where}={ref!r}")
                c.expect(not bad, f"Grafana: {name}: its {n} datasource references resolve to provisioned datasources {sorted(uids)}",
                         f"Grafana: {name}: datasource references that match no provisioned datasource "
                         f"(uids {sorted(uids)}): {bad}")


def check_dashboards(objs: Objects, c: Checker, deploy_dir: Path) -> None:
    files = sorted((deploy_dir / "dashboards").glob("*.json"))
    if not c.expect(bool(files), f"deploy/dashboards has {len(files)} dashboards", "deploy/dashboards has no *.json"):
        return
    seen = {}
    for f in files:
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            c.fail(f"{f.name}: not valid JSON: {e}")
            continue
        if not c.expect(isinstance(d, dict) and d.get("uid") and d.get("title") and isinstance(d.get("panels"), list),
                        f"{f.name}: valid JSON dashboard {d.get('title')!r} (uid {d.get('uid')})",
                        f"{f.name}: not a dashboard (needs uid, title, panels)"):
            continue
        if d["uid"] in seen:
            c.fail(f"{f.name}: uid {d['uid']} also used by {seen[d['uid']]}")
        seen[d["uid"]] = f.name
        for inp in d.get("__inputs") or []:
            if inp.get("type") == "datasource" and inp.get("pluginId") != "prometheus":
                c.fail(f"{f.name}: input {inp.get('name')} wants a {inp.get('pluginId')} datasource, only Prometheus is provisioned")
    # The ConfigMap carries them byte for byte: one copy in the repository.
    cms = [cm for cm in objs.of_kind("ConfigMap")
           if any(k.endswith(".json") for k in (cm.get("data") or {}))]
    for f in files:
        holders = [name_of(cm) for cm in cms if (cm.get("data") or {}).get(f.name) == f.read_text(encoding="utf-8")]
        c.expect(len(holders) == 1, f"{f.name}: shipped unchanged in ConfigMap {holders[0] if holders else ''}",
                 f"{f.name}: in {len(holders)} ConfigMaps with identical content, expected 1")


def check_build(c: Checker, deploy_dir: Path) -> None:
    repo = deploy_dir.parent
    dockerfile = deploy_dir / "Dockerfile"
    if not c.expect(dockerfile.is_file(), "deploy/Dockerfile exists", "deploy/Dockerfile is missing"):
        return
    text = dockerfile.read_text(encoding="utf-8")
    makefile = repo / "Makefile"
    if not makefile.is_file():
        print("note: no Makefile beside deploy/, Dockerfile build steps not checked")
        return
    mk = makefile.read_text(encoding="utf-8")
    target = re.search(r"^GUEST_TARGET\s*:=\s*(\S+)", mk, re.M)
    c.expect(bool(target) and f"rustup target add {target.group(1)}" in text,
             f"Dockerfile adds the guests' target {target.group(1) if target else '?'}",
             "Dockerfile does not add the Makefile's GUEST_TARGET with rustup")
    c.expect("make host gadgets" in text, "Dockerfile runs `make host gadgets`", "Dockerfile does not run `make host gadgets`")
    if shutil.which("make"):
        r = subprocess.run(["make", "-n", "-C", str(repo), "host", "gadgets"], capture_output=True, text=True)
        c.expect(r.returncode == 0, "`make -n host gadgets` resolves (targets exist)",
                 f"`make -n host gadgets` fails: {r.stderr.strip()}")
        outputs = set(re.findall(r"\b(gadgets/[\w.-]+/[\w.-]+)\b", r.stdout))
    else:
        outputs = set()
    bins = re.findall(r'\[\[bin\]\]\s*name\s*=\s*"([^"]+)"', (repo / "host/cli/Cargo.toml").read_text(encoding="utf-8")) \
        if (repo / "host/cli/Cargo.toml").is_file() else []
    for src in re.findall(r"/src/(\S+)", text):
        if src.startswith("target/release/"):
            ok = src.rsplit("/", 1)[1] in bins
        else:
            ok = (repo / src).is_file() or src in outputs
        c.expect(ok, f"Dockerfile copies {src}, which the repo has or `make host gadgets` makes",
                 f"Dockerfile copies /src/{src}: neither in the repository nor made by `make host gadgets`")


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("roots", "refs", "resources"):
        sub.add_parser(name).add_argument("deploy_dir")
    sub.add_parser("render").add_argument("dir")
    chk = sub.add_parser("check")
    chk.add_argument("--render", required=True, help="rendering of the top-level kustomization")
    chk.add_argument("--sub-render", action="append", default=[], help="rendering of another kustomization")
    chk.add_argument("--deploy-dir", required=True)
    a = ap.parse_args()

    c = Checker()
    if a.cmd == "roots":
        for r in kustomization_roots(Path(a.deploy_dir)):
            print(r)
        return 0
    if a.cmd == "resources":
        for f in resource_files(Path(a.deploy_dir)):
            print(f)
        return 0
    if a.cmd == "refs":
        check_refs(Path(a.deploy_dir), c)
        return c.exit_code()
    if a.cmd == "render":
        yaml.safe_dump_all(render(Path(a.dir)), sys.stdout, sort_keys=False, allow_unicode=True)
        return 0

    deploy_dir = Path(a.deploy_dir)
    for s in a.sub_render:
        check_generic(Objects(load_docs(s)), c, os.path.basename(s), require_optional=False)
    objs = Objects(load_docs(a.render))
    check_generic(objs, c, os.path.basename(a.render), require_optional=True)
    check_daemon(objs, c, deploy_dir)
    prometheus = check_prometheus(objs, c)
    check_dashboards(objs, c, deploy_dir)
    check_grafana(objs, c, deploy_dir, prometheus)
    check_build(c, deploy_dir)
    print(f"{c.passes} checks passed, {len(c.failures)} failed")
    return c.exit_code()


if __name__ == "__main__":
    sys.exit(main())

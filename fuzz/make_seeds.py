#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/<target>/ (checked in; run once, by hand).

Seeds are named for what they are; inputs the fuzzer found are added beside them as
crash-<what>. Real artifacts come from IG's fixture images (../shared/fixtures or
/work/shared/fixtures) and this repository's gadgets; the rest reproduce issue 11's findings
at a size that fits a seed (each stays under the parsers' 1 MiB caps).
"""
import hashlib, io, json, os, sys, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")
# Inputs of findings still open: replayed by `make fuzz-open`, moved to corpus/ once fixed.
OPEN = os.path.join(HERE, "open")
FIXTURES = next(p for p in [os.path.join(ROOT, "..", "shared", "fixtures"), "/work/shared/fixtures"]
                if os.path.isdir(p))


def put(target, name, data, where=CORPUS):
    d = os.path.join(where, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def ig_archive(name):
    with open(os.path.join(FIXTURES, "ig-v0.46.0", f"{name}.oci.tar"), "rb") as f:
        raw = f.read()
    t = tarfile.open(fileobj=io.BytesIO(raw))
    files = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    return raw, files


def blob(files, digest):
    return files["blobs/sha256/" + digest.split(":", 1)[1]]


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def tar_of(entries):
    """entries: (name, bytes | None for a dir, or ('symlink', target))"""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif isinstance(data, tuple):
                info.type = tarfile.SYMTYPE
                info.linkname = data[1]
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return out.getvalue()


pb_raw, pb = ig_archive("profile_blockio")
to_raw, to = ig_archive("trace_open")
pb_index = json.loads(pb["index.json"])
pb_top = blob(pb, pb_index["manifests"][0]["digest"])
pb_platforms = json.loads(pb_top)["manifests"]
pb_manifest = blob(pb, pb_platforms[0]["digest"])
pb_config = blob(pb, json.loads(pb_manifest)["config"]["digest"])
pb_ebpf = blob(pb, json.loads(pb_manifest)["layers"][0]["digest"])
to_index = json.loads(to["index.json"])
to_top = blob(to, to_index["manifests"][0]["digest"])
to_manifest = blob(to, json.loads(to_top)["manifests"][0]["digest"])
to_config = blob(to, json.loads(to_manifest)["config"]["digest"])
to_ebpf = blob(to, json.loads(to_manifest)["layers"][0]["digest"])

# Issue 11's YAML findings, shared by the YAML parsers.
UNCLOSED = "apiVersion: 1\nkind: instance-spec\nimage: x\nname: [unclosed\n"
BOM = "\ufeffapiVersion: 1\nkind: instance-spec\nimage: x\nname: [unclosed\n"
ALIAS = "a: &a " + "x" * 4096 + "\nb: [" + ", ".join(["*a"] * 200) + "]\n"
NESTED = "[" * 20000
LABELS = "".join(f"  k{i}: v{i}\n" for i in range(20000))

# gadget.yaml
for name in ["profile_blockio", "runqlat"]:
    with open(os.path.join(ROOT, "gadgets", name, "gadget.yaml"), "rb") as f:
        put("gadget_yaml", f"gadget-{name}.yaml", f.read())
put("gadget_yaml", "ig-profile_blockio.yaml", pb_config)
put("gadget_yaml", "ig-trace_open.yaml", to_config)
put("gadget_yaml", "finding-unclosed.yaml", "name: x\ndatasources: [unclosed\n")
put("gadget_yaml", "finding-bom.yaml", "\ufeffname: x\n")
put("gadget_yaml", "finding-alias.yaml", "name: x\n" + ALIAS)
put("gadget_yaml", "finding-nesting.yaml", "name: x\ndescription: " + NESTED)
put("gadget_yaml", "finding-labels.yaml", "name: x\ndatasources:\n d:\n  annotations:\n" + LABELS.replace("  k", "   k"))
put("gadget_yaml", "params.yaml", "name: p\nparams:\n  ebpf:\n    a: {key: x, typeHint: uint, defaultValue: '70000'}\n"
    "    b: {typeHint: bool, defaultValue: maybe}\n    c: {typeHint: device, defaultValue: '7:0'}\n"
    "  wasm:\n    d: {typeHint: bool}\ncapabilities: [clock]\n")

# IG manifests
VALID = ("apiVersion: 1\nkind: instance-spec\nimage: profile_blockio:v0.46.0\nname: blk\ntags: [a, b]\n"
         "paramValues:\n  operator.oci.annotate: blockio:metrics.collect=true\n"
         "  operator.otel-metrics.otel-metrics-name: blockio:blockio-metrics\n"
         "  operator.otel-metrics.otel-metrics-print-interval: 5s\n"
         "  operator.oci.ebpf.disk: loop0\n  operator.oci.wasm.mode: x\n")
put("manifest", "valid.yaml", VALID)
put("manifest", "multi.yaml", VALID + "---\n" + VALID.replace("blk", "blk2") + "---\n")
put("manifest", "finding1-unclosed.yaml", UNCLOSED)
put("manifest", "finding1-bom.yaml", BOM)
put("manifest", "finding1-bom-valid.yaml", "\ufeff" + VALID)
put("manifest", "finding-alias.yaml", "apiVersion: 1\nkind: instance-spec\nimage: x\n" + ALIAS.replace("a: &a", "name: &a").replace("\nb:", "\ntags:"))
put("manifest", "finding5-nesting.yaml", "apiVersion: 1\nkind: instance-spec\nimage: x\nname: " + NESTED)
put("manifest", "finding5-nesting-closed.yaml", "apiVersion: 1\nkind: instance-spec\nimage: x\nname: " + "[" * 100000 + "]" * 100000)
put("manifest", "finding5-alias-amplification.yaml", "apiVersion: 1\nkind: instance-spec\nimage: x\nname: &a " + "x" * 65536 + "\ntags: [" + ",".join(["*a"] * 100000) + "]\n")
put("manifest", "finding-labels.yaml", "apiVersion: 1\nkind: instance-spec\nimage: x\nparamValues:\n"
    + "".join(f"  operator.oci.ebpf.k{i}: v{i}\n" for i in range(20000)))
put("manifest", "bad-version.yaml", "apiVersion: 2\nkind: instance-spec\nimage: x\n")
put("manifest", "bad-interval.yaml", "apiVersion: 1\nkind: instance-spec\nimage: x\nparamValues:\n  operator.otel-metrics.otel-metrics-print-interval: 99999999999999999h\n")

# --annotate (lines; `=` metrics names, `-` params), NUL, optional gadget.yaml
put("annotate", "typical", "blockio:metrics.collect=true,blockio.latency:metrics.unit=us\n"
    "blockio:env.fields.node=NODE_NAME\nblockio.node:metrics.type=key\n=blockio:blockio-metrics\n-disk=7:0\n-flag=yes\n-count=12")
put("annotate", "bad", "blockio:metrics.type=sum\nnope:a=b\nblockio.:x=y\n:=\n,,,\n-disk=../../etc\n-count=-1")
put("annotate", "with-yaml", b"ds:metrics.print=true\nds.f:metrics.type=gauge\0" + b"name: g\ndatasources:\n  ds:\n    fields:\n      f: {}\n")
put("annotate", "ig-trace_open", b"open:metrics.collect=true\0" + to_config)

# image references, NUL, optional prefix
for i, r in enumerate(["profile_blockio:v0.46.0", "ghcr.io/inspektor-gadget/gadget/trace_open:latest",
                       "localhost:5000/a/b:c@sha256:" + "0" * 64, "127.0.0.1:5000/x@sha256:" + "a" * 64,
                       "UPPER/x", "a//b", "host:notaport/x:y:z", "x:" + "t" * 129]):
    put("image_ref", f"ref{i}", r)
put("image_ref", "prefix", b"org/name:tag\0registry.example:5000/some/prefix/")
put("image_ref", "prefix-nohost", b"name\0nohost/prefix")

# OCI JSON: top blob first, then the blobs it reaches, NUL-separated
put("oci_json", "ig-profile_blockio-index", b"\0".join([pb_top] + [blob(pb, m["digest"]) for m in pb_platforms]))
put("oci_json", "ig-profile_blockio-manifest", pb_manifest)
put("oci_json", "ig-trace_open-index", b"\0".join([to_top, to_manifest]))
put("oci_json", "store-index", pb["index.json"])
put("oci_json", "negative-size", json.dumps({"schemaVersion": 2, "config": {"mediaType": "application/vnd.gadget.config.v1+yaml",
    "digest": sha(b"x"), "size": -1}, "layers": [{"mediaType": "application/vnd.gadget.ebpf.program.v1+binary",
    "digest": "sha256:" + "0" * 64, "size": 9223372036854775807}]}))

# archive import
put("archive_import", "ig-profile_blockio.tar", pb_raw)
small = {n: d for n, d in pb.items() if not d.startswith(b"\x7fELF")}
put("archive_import", "no-layers.tar", tar_of(sorted(small.items())))
put("archive_import", "traversal.tar", tar_of([("../../etc/x", b"x"), ("index.json", pb["index.json"])]))
put("archive_import", "symlink.tar", tar_of([("blobs", None), ("blobs/sha256/" + "0" * 64, ("sym", "/etc/passwd"))]))
put("archive_import", "lying-name.tar", tar_of([("index.json", pb["index.json"]), ("blobs/sha256/" + "1" * 64, b"not this")]))
put("archive_import", "bad-index.tar", tar_of([("index.json", UNCLOSED.encode())]))

# registry auth: challenge, NUL, token JSON, NUL, config.json, NUL, registry
def auth(ch, tok, cfg, reg):
    return b"\0".join(x.encode() if isinstance(x, str) else x for x in [ch, tok, cfg, reg])
put("registry_auth", "ghcr", auth('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"',
    '{"token":"abc"}', '{"auths":{"ghcr.io":{"auth":"dXNlcjpwYXNz"}}}', "ghcr.io"))
put("registry_auth", "hub", auth('Basic realm="x", Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
    '{"access_token":"t","expires_in":300}', '{"auths":{"https://index.docker.io/v1/":{"username":"u","password":"p"}}}', "index.docker.io"))
put("registry_auth", "escapes", auth('Bearer realm="a\\"b\\\\c", service=unquoted, ,,', '{"token":1}',
    '{"auths":{"127.0.0.1:5000":{"auth":"bm9jb2xvbg=="}},"credsStore":"desktop"}', "127.0.0.1:5000"))
put("registry_auth", "bad", auth('Bearer', 'null', '[]', ""))

# eBPF objects
put("ebpf_object", "ig-profile_blockio.bpf.o", pb_ebpf)
put("ebpf_object", "ig-trace_open.bpf.o", to_ebpf)

# daemon socket
run = {"op": "run", "spec": {"reference": "/gadgets/x", "interval_ms": 1000, "guest_fuel": 1000, "guest_memory_mib": 64,
       "name": "a", "tags": ["t"], "params": {"disk": "loop0"}, "annotations": ["blockio:metrics.collect=true"],
       "metrics_names": ["blockio:m"], "attach_mode": "tp_btf", "grants": ["clock"]}}
put("daemon_frame", "run", json.dumps(run) + "\n")
put("daemon_frame", "list-delete-attach", '{"op":"list"}\n{"op":"delete","targets":["a","b"]}\n{"op":"attach","target":"x"}\n')
put("daemon_frame", "replies", '{"reply":"started","id":"x"}\n{"reply":"instances","instances":[{"id":"1","name":"n","tags":[],'
    '"gadget":"g","status":"Running","created_ms":1}]}\n{"reply":"frame","text":"\\u001b[2J"}\n{"reply":"error","message":"m"}\n')
put("daemon_frame", "saved", json.dumps({"id": "0" * 32, "created_ms": 1, "request": run["spec"]}) + "\n")
put("daemon_frame", "garbage", '{"op":"run","spec":{"reference":"x","interval_ms":0,"guest_fuel":0,"guest_memory_mib":18446744073709551615}}\n'
    + "[" * 5000 + "\n\xff\xfe\n")

# Issue 11, finding 8: an import publishes a blob no descriptor references, and trusts a
# descriptor's size (a config said to be 1 byte is stored and listed as such).
put("archive_import", "finding8-unreferenced-blob.tar",
    tar_of(sorted(pb.items()) + [("blobs/sha256/" + sha(b"junk").split(":")[1], b"junk")]), OPEN)
lying = json.loads(pb_manifest)
lying["config"]["size"] = 1
lying_manifest = json.dumps(lying).encode()
lying_index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": sha(lying_manifest), "size": len(lying_manifest),
    "annotations": {"org.opencontainers.image.ref.name": "example.com/lying:1"}}]}).encode()
put("archive_import", "finding8-size-of-1.tar", tar_of([("oci-layout", pb["oci-layout"]), ("index.json", lying_index)]
    + [("blobs/sha256/" + sha(b).split(":")[1], b) for b in [lying_manifest, pb_config, pb_ebpf]]), OPEN)

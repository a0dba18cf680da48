#!/usr/bin/env bash
# Offline validation of deploy/ (no API server, no container engine needed).
#
#   deploy/validate.sh              validate; exit 0 when everything passes
#   deploy/validate.sh --self-test  also break copies of deploy/ on purpose and
#                                   require each copy to be rejected
#
# What it does:
#  1. Gets `kubernetes-validate` (PyPI) into a venv: $KV_VENV if set, else
#     ${TMPDIR:-/tmp}/gadget-deploy-validate-venv (reused while it has the same
#     $KV_SPEC). Installs python3-venv with apt when Debian's python3 lacks it.
#  2. Checks every kustomization names only files that exist inside its directory
#     (kustomization.yaml is no Kubernetes object: it is checked, not schema-validated).
#  3. Renders every kustomization (deploy/, deploy/kubernetes, deploy/monitoring) with
#     `kustomize build`, else `kubectl kustomize`, else a small Python stand-in
#     (VALIDATE_RENDERER=python forces it).
#  4. Runs `kubernetes-validate --strict` (unknown fields are errors) on every
#     rendering and on every resource file, for $K8S_VERSIONS (default: 1.31 and the
#     newest the package knows). A warning (e.g. unknown kind) counts as a failure.
#  5. Runs deploy/validate_checks.py on the full rendering: references between
#     objects, the daemon's flags/ports/probes/mounts/RBAC, the Prometheus config
#     (and `promtool check config` when installed), Grafana's provisioning (it runs the
#     init container's script on the dashboards and checks that every datasource
#     reference resolves to the provisioned datasource), the dashboards' JSON, and
#     that the Dockerfile's inputs exist.
# Any failure: a line starting with FAIL and a non-zero exit status.
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KV_SPEC=${KV_SPEC:-kubernetes-validate==1.37.0}
K8S_MIN_VERSION=${K8S_MIN_VERSION:-1.31}

say() { printf '%s\n' "$*"; }
die() { printf 'validate.sh: FAIL: %s\n' "$*" >&2; exit 1; }
# A path as short as it can be said: rendering name, or path from the repository root.
rel() { case $1 in */render/*) printf 'rendering %s' "${1##*/render/}" ;; *) printf '%s' "${1#"$(dirname "$DEPLOY_DIR")"/}" ;; esac; }

# --- 1. kubernetes-validate in a venv ------------------------------------------------
ensure_venv() {
    local venv=${KV_VENV:-${TMPDIR:-/tmp}/gadget-deploy-validate-venv}
    mkdir -p "$(dirname "$venv")"
    # Several test processes may call this at once: one creates the venv, the others wait.
    if command -v flock >/dev/null; then
        exec 9>"$venv.lock"
        flock 9
    fi
    if [ -x "$venv/bin/kubernetes-validate" ] && [ "$(cat "$venv/.kv-spec" 2>/dev/null)" = "$KV_SPEC" ] \
        && "$venv/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
        VENV=$venv
        return
    fi
    local py
    py=$(command -v python3) || die "python3 not found (needed for kubernetes-validate)"
    rm -rf "$venv"
    if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
        # Debian's python3 ships venv/ensurepip in a separate package.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            say "== python3 ($py) cannot create venvs: installing python3-venv"
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
                || die "apt-get install python3-venv failed"
        else
            die "$py cannot create a venv; install python3-venv (Debian) or set KV_VENV to a venv with $KV_SPEC"
        fi
    fi
    say "== creating venv $venv with $KV_SPEC"
    "$py" -m venv "$venv" || die "python3 -m venv $venv failed"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$KV_SPEC" \
        || die "pip install $KV_SPEC failed (is PyPI reachable?)"
    printf '%s\n' "$KV_SPEC" >"$venv/.kv-spec"
    VENV=$venv
}

# --- the validation of one deploy/ directory ------------------------------------------
# validate DEPLOY_DIR WORKDIR: prints its progress, returns non-zero on any failure.
validate() {
    local deploy=$1 work=$2 rc=0 renderer roots root name out f v
    local checks=("$VENV/bin/python" "$DEPLOY_DIR/validate_checks.py")
    mkdir -p "$work/render"

    say "== kustomization references"
    "${checks[@]}" refs "$deploy" || rc=1

    if [ "${VALIDATE_RENDERER:-}" = python ]; then
        renderer=python
    elif command -v kustomize >/dev/null; then
        renderer="kustomize build"
    elif command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
        renderer="kubectl kustomize"
    else
        renderer=python
    fi
    say "== rendering with: $renderer"
    mapfile -t roots < <("${checks[@]}" roots "$deploy")
    [ "${#roots[@]}" -gt 0 ] || { say "FAIL: no kustomization under $deploy"; return 1; }
    local renders=()
    for root in "${roots[@]}"; do
        name=${root#"$(dirname "$deploy")"/}
        out="$work/render/${name//\//_}.yaml"
        if [ "$renderer" = python ]; then
            "${checks[@]}" render "$root" >"$out" 2>"$work/render.err" || { say "FAIL: rendering $name: $(cat "$work/render.err")"; rc=1; continue; }
        else
            # shellcheck disable=SC2086
            $renderer "$root" >"$out" 2>"$work/render.err" || { say "FAIL: rendering $name: $(cat "$work/render.err")"; rc=1; continue; }
        fi
        say "ok: $name renders to $(grep -c '^kind:' "$out") objects"
        renders+=("$out")
    done

    local versions=${K8S_VERSIONS:-"$K8S_MIN_VERSION $("$VENV/bin/python" -c 'import kubernetes_validate.utils as u; print(u.latest_version())')"}
    say "== kubernetes-validate --strict, Kubernetes $versions"
    local targets=("${renders[@]}")
    mapfile -t -O "${#targets[@]}" targets < <("${checks[@]}" resources "$deploy")
    local bad
    for f in "${targets[@]}"; do
        bad=0
        for v in $versions; do
            local kvrc=0
            out=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$f" 2>&1) || kvrc=$?
            if [ "$kvrc" != 0 ] || [ -n "$out" ]; then
                # --quiet prints only warnings and failures; both count.
                say "FAIL: $(rel "$f") against $v:"
                say "$out" | sed 's/^/    /'
                bad=1
            fi
        done
        [ $bad = 0 ] || { rc=1; continue; }
        say "ok: $(rel "$f") ($(grep -c '^kind:' "$f") objects) valid for ${versions// /, }"
    done

    say "== consistency checks"
    local top="$work/render/${deploy##*/}.yaml" subs=() s
    for s in "${renders[@]}"; do [ "$s" = "$top" ] || subs+=(--sub-render "$s"); done
    [ -f "$top" ] || { say "FAIL: no rendering of the top-level kustomization"; return 1; }
    "${checks[@]}" check --render "$top" "${subs[@]}" --deploy-dir "$deploy" || rc=1
    return $rc
}

# --- --self-test: each deliberately broken copy must be rejected ----------------------
self_test() {
    local base=$1 n=0 failed=0 case dir
    # name | file (relative to the repository) | python expression applied to its text
    local cases=(
        "schema: wrong type|deploy/kubernetes/daemonset.yaml|t.replace('containerPort: 2224', 'containerPort: \"metrics\"')"
        "schema (strict): unknown field|deploy/kubernetes/daemonset.yaml|t.replace('hostPID: false', 'hostPID: false\n      hostPid: false')"
        "kustomization names a missing file|deploy/monitoring/kustomization.yaml|t.replace('- namespace.yaml', '- namespaces.yaml')"
        "dashboard is not JSON|deploy/dashboards/latency-dashboard.json|t[:-2]"
        "datasource uid differs from the dashboards'|deploy/monitoring/grafana/datasources.yaml|t.replace('uid: prometheus', 'uid: prom')"
        "provider path is not where dashboards are|deploy/monitoring/grafana/dashboard-providers.yaml|t.replace('path: /etc/grafana/dashboards/gadget', 'path: /var/lib/grafana/dashboards')"
        "Prometheus adds a node target label|deploy/monitoring/prometheus/prometheus.yml|t.replace('target_label: kubernetes_node', 'target_label: node')"
        "probe port is not the metrics port|deploy/kubernetes/daemonset.yaml|t.replace('prometheus.io/port: \"2224\"', 'prometheus.io/port: \"2223\"')"
    )
    for case in "${cases[@]}"; do
        IFS='|' read -r name file expr <<<"$case"
        n=$((n + 1))
        dir="$base/case$n"
        mkdir -p "$dir"
        # A copy of what the checks read: deploy/ plus the build inputs the Dockerfile names.
        (cd "$(dirname "$DEPLOY_DIR")" && tar -cf - --exclude=./target --exclude=./build --exclude=./.git .) | tar -xf - -C "$dir"
        chmod -R u+w "$dir"
        "$VENV/bin/python" - "$dir/$file" "$expr" <<'EOF'
import sys
path, expr = sys.argv[1], sys.argv[2]
t = open(path, encoding="utf-8").read()
new = eval(expr, {"t": t})
if new == t:
    sys.exit(f"self-test: the mutation did not change {path}")
open(path, "w", encoding="utf-8").write(new)
EOF
        if validate "$dir/deploy" "$dir/work" >"$dir/log" 2>&1; then
            say "FAIL: self-test '$name': the broken copy was accepted (log: $dir/log)"
            failed=1
        else
            # The first FAIL line, with the indented detail line that may follow it.
            say "ok: self-test '$name' rejected: $(grep -m1 -A1 'FAIL' "$dir/log" | sed -n '1p;2{/^    /p}' | tr -s ' \n' ' ' | cut -c1-240)"
        fi
    done
    return $failed
}

main() {
    local self=0
    case "${1:-}" in
        --self-test) self=1 ;;
        "") ;;
        *) die "usage: $0 [--self-test]" ;;
    esac
    ensure_venv
    say "== kubernetes-validate $("$VENV/bin/kubernetes-validate" --version) in $VENV"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/gadget-deploy-validate.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
    if ! validate "$DEPLOY_DIR" "$WORK/main"; then
        say "validate.sh: FAILED (see FAIL lines above)"
        exit 1
    fi
    if [ $self = 1 ]; then
        say "== self-test: broken copies must be rejected"
        self_test "$WORK/self" || { say "validate.sh: self-test FAILED"; exit 1; }
    fi
    say "validate.sh: all checks passed"
}

main "$@"

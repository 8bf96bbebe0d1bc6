#!/usr/bin/env bash
# The local control plane: etcd + upstream apiextensions-apiserver + discovery front + node agent.
#
#   e2e/cluster.sh up       start what is not running (idempotent), install stand-ins and our CRDs
#   e2e/cluster.sh down     stop everything, pods included; leaves no process behind
#   e2e/cluster.sh status   what runs, where
#   e2e/cluster.sh env      print `export KUBECONFIG=…` for a shell
#   e2e/cluster.sh restart-operator   stop and start the operator process
#   e2e/cluster.sh start-operator     start the operator if it does not run (after a kill -9)
#   e2e/cluster.sh restart-apiserver  stop (SIGTERM, SIGKILL after 5 s) and start the API server
#   e2e/cluster.sh restart-etcd       stop and start etcd
#   e2e/cluster.sh start-second-operator | stop-second-operator
#                                     a follower replica of the operator (leader-election faults)
#
# Configurable by env, so that two runs can coexist:
#   TROUPE_CLUSTER_DIR (default .local/cluster in the repo), TROUPE_ETCD_PORT (23790),
#   TROUPE_APISERVER_PORT (26443), TROUPE_FRONT_PORT (28080), TROUPE_NODE_PORT (28081),
#   TROUPE_PROMETHEUS_PORT (node + 2), TROUPE_ALERTMANAGER_PORT (node + 3),
#   TROUPE_POD_SUBNET (127.10 — pods get 127.10.0.2, 127.10.0.3, …), TROUPE_CACHE (~/.cache/troupe),
#   TROUPE_NODE_RUNTIME (process — or podman: pods as OCI containers from images in local storage;
#   a pod's runtimeClassName picks either whatever the default), TROUPE_OPERATOR (process — or
#   none: no operator process, for an operator installed with `helm install`), RUST_LOG (the
#   operator's log filter) and TROUPE_WORKER_LOG (the workers': info,kube=warn).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DIR=${TROUPE_CLUSTER_DIR:-$REPO/.local/cluster}
# A cluster remembers its ports: later commands (restart-operator from a test) need no env.
if [ -f "$DIR/ports.env" ]; then
  while IFS="=" read -r k v; do if [ -n "$k" ] && [ -z "${!k:-}" ]; then export "$k=$v"; fi; done <"$DIR/ports.env"
fi
ETCD_PORT=${TROUPE_ETCD_PORT:-23790}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
API_PORT=${TROUPE_APISERVER_PORT:-26443}
FRONT_PORT=${TROUPE_FRONT_PORT:-28080}
NODE_PORT=${TROUPE_NODE_PORT:-28081}
OPERATOR_PORT=${TROUPE_OPERATOR_PORT:-$((NODE_PORT + 1))}
PROM_PORT=${TROUPE_PROMETHEUS_PORT:-$((NODE_PORT + 2))}
AM_PORT=${TROUPE_ALERTMANAGER_PORT:-$((NODE_PORT + 3))}
SECOND_OPERATOR_PORT=${TROUPE_SECOND_OPERATOR_PORT:-$((NODE_PORT + 4))}
PG_PORT=${TROUPE_POSTGRES_PORT:-$((NODE_PORT + 5))}
POD_SUBNET=${TROUPE_POD_SUBNET:-127.10}
# podman (the node agent's podman runtime) reads the containers.conf `make tools` writes.
if [ -z "${CONTAINERS_CONF:-}" ] && [ -f "${TROUPE_CACHE:-$HOME/.cache/troupe}/containers.conf" ]; then
  export CONTAINERS_CONF=${TROUPE_CACHE:-$HOME/.cache/troupe}/containers.conf
fi
PROFILE_DIR=${TROUPE_TARGET_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/debug}

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
save_ports() {
  printf '%s\n' "TROUPE_ETCD_PORT=$ETCD_PORT" "TROUPE_APISERVER_PORT=$API_PORT" "TROUPE_FRONT_PORT=$FRONT_PORT" \
    "TROUPE_NODE_PORT=$NODE_PORT" "TROUPE_OPERATOR_PORT=$OPERATOR_PORT" "TROUPE_PROMETHEUS_PORT=$PROM_PORT" \
    "TROUPE_ALERTMANAGER_PORT=$AM_PORT" "TROUPE_POD_SUBNET=$POD_SUBNET" >"$DIR/ports.env"
}
LOGS=$DIR/logs PIDS=$DIR/pids CERTS=$DIR/certs
KUBECONFIG_PATH=$DIR/kubeconfig
ADMIN_KUBECONFIG=$DIR/admin.kubeconfig

log() { echo "[cluster] $*" >&2; }
die() { echo "[cluster] ERROR: $*" >&2; exit 1; }

running() { # name
  local f=$PIDS/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null || return 1
  # A process killed but not yet reaped (a zombie: its parent is gone and init reaps late) is
  # not running; counting it would skip the restart of a killed operator.
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

port_free() { # port
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

check_ports() {
  local name port
  for pair in etcd:$ETCD_PORT etcd-peer:$ETCD_PEER_PORT apiserver:$API_PORT front:$FRONT_PORT node:$NODE_PORT operator:$OPERATOR_PORT prometheus:$PROM_PORT alertmanager:$AM_PORT; do
    name=${pair%%:*} port=${pair#*:}
    if [ "$name" = etcd-peer ]; then running etcd && continue; else running "${name}" && continue; fi
    port_free "$port" || die "port $port for $name is taken by another process (another cluster?); pick other ports with TROUPE_*_PORT"
  done
}

start() { # name command...
  local name=$1; shift
  if running "$name"; then return; fi
  mkdir -p "$LOGS" "$PIDS"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
  log "started $name (pid $!, log $LOGS/$name.log)"
}

wait_for() { # name seconds check-command...
  local name=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    running "$name" || { tail -n 30 "$LOGS/$name.log" >&2 || true; die "$name exited during start-up (log above, full log $LOGS/$name.log)"; }
    [ $SECONDS -lt $deadline ] || { tail -n 30 "$LOGS/$name.log" >&2 || true; die "$name not ready after ${secs}s (log $LOGS/$name.log)"; }
    sleep 0.2
  done
}

make_certs() {
  mkdir -p "$CERTS"
  # The key the API server signs service-account tokens with (TokenRequest). Made on its own, so
  # that a cluster folder from before it existed gets one; replacing it invalidates every token.
  if [ ! -f "$CERTS/sa.key" ]; then
    (umask 077 && openssl genrsa -out "$CERTS/sa.key" 2048 2>/dev/null)
  fi
  [ -f "$CERTS/admin.crt" ] && return
  log "generating a CA, the server certificate and the admin client certificate"
  (
    cd "$CERTS"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=troupe-local-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=troupe-local-apiserver" \
      -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=troupe-admin" \
      -keyout admin.key -out admin.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile admin.ext -out admin.crt 2>/dev/null
    rm -f ./*.csr ./*.ext
  )
}

write_kubeconfigs() {
  cat >"$ADMIN_KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: troupe-local-direct
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $CERTS/ca.crt
users:
- name: troupe-admin
  user:
    client-certificate: $CERTS/admin.crt
    client-key: $CERTS/admin.key
contexts:
- name: troupe-local-direct
  context: {cluster: troupe-local-direct, user: troupe-admin, namespace: default}
current-context: troupe-local-direct
EOF
  cat >"$KUBECONFIG_PATH" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: troupe-local
  cluster:
    server: http://127.0.0.1:$FRONT_PORT
users:
- name: troupe-local
  user: {}
contexts:
- name: troupe-local
  context: {cluster: troupe-local, user: troupe-local, namespace: default}
current-context: troupe-local
EOF
}

localcp() { echo "$PROFILE_DIR/troupe-localcp"; }

tools_bin() { "$REPO/e2e/tools/install.sh" all | tail -n 1; }

# Waits up to 10 s for a port to be free (a process just stopped may still be closing it).
await_port() { # port
  for _ in $(seq 1 100); do port_free "$1" && return 0; sleep 0.1; done
  die "port $1 is still taken 10 s after its process was stopped"
}

start_etcd() {
  # Already up (`up` on a running control plane): its ports are its own.
  running etcd || { await_port "$ETCD_PORT"; await_port "$ETCD_PEER_PORT"; }
  start etcd "$BIN/etcd" --name troupe-local --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "troupe-local=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn
  wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  running apiserver || await_port "$API_PORT"
  # Our build authenticates (client certificates, the service-account tokens it signs) and
  # authorizes (system:masters, then RBAC) by itself; the prebuilt upstream fallback knows none of
  # that and delegates both to the server itself.
  local auth=(--service-account-signing-key-file "$CERTS/sa.key"
    --service-account-issuer https://kubernetes.default.svc.cluster.local)
  case $(readlink "$BIN/apiextensions-apiserver") in
    *-upstream) auth=(--authentication-kubeconfig "$ADMIN_KUBECONFIG" --authorization-kubeconfig "$ADMIN_KUBECONFIG") ;;
  esac
  start apiserver "$BIN/apiextensions-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" --secure-port "$API_PORT" --bind-address 127.0.0.1 \
    --tls-cert-file "$CERTS/server.crt" --tls-private-key-file "$CERTS/server.key" \
    --client-ca-file "$CERTS/ca.crt" --authentication-skip-lookup "${auth[@]}" \
    --kubeconfig "$ADMIN_KUBECONFIG" \
    --disable-admission-plugins NamespaceLifecycle,MutatingAdmissionPolicy,MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook
  # /readyz stays red here (its informers wait for core APIs that this server does not have);
  # /healthz plus a served CRD list is what "ready" means for this server.
  wait_for apiserver 90 curl -sf --cacert "$CERTS/ca.crt" --cert "$CERTS/admin.crt" --key "$CERTS/admin.key" \
    "https://127.0.0.1:$API_PORT/apis/apiextensions.k8s.io/v1/customresourcedefinitions?limit=1"
}

cmd_up() {
  local t0=$SECONDS
  BIN=$("$REPO/e2e/tools/install.sh" all | tail -n 1)
  export PATH=$BIN:$PATH
  [ -x "$(localcp)" ] || (cd "$REPO" && cargo build -q --workspace --bins)
  [ -x "$(localcp)" ] || die "$(localcp) is missing: run cargo build"
  save_ports
  make_certs
  write_kubeconfigs
  check_ports

  start_etcd
  start_apiserver

  "$(localcp)" --admin-kubeconfig "$ADMIN_KUBECONFIG" stand-ins --etcd "http://127.0.0.1:$ETCD_PORT" \
    >>"$LOGS/stand-ins.log" 2>&1 || { tail -n 20 "$LOGS/stand-ins.log" >&2; die "installing the stand-in CRDs failed"; }

  start front "$(localcp)" --admin-kubeconfig "$ADMIN_KUBECONFIG" front --listen "127.0.0.1:$FRONT_PORT"
  wait_for front 30 curl -sf "http://127.0.0.1:$FRONT_PORT/api"

  if [ -x "$PROFILE_DIR/troupe-localcp" ] && "$(localcp)" --help 2>/dev/null | grep -q '^  node'; then
    start node "$(localcp)" --admin-kubeconfig "$ADMIN_KUBECONFIG" node --listen "127.0.0.1:$NODE_PORT" \
      --pod-subnet "$POD_SUBNET" --bin-dir "$PROFILE_DIR" --state-dir "$DIR/pods" \
      --scrape-targets "$DIR/monitoring/targets.json" --runtime "${TROUPE_NODE_RUNTIME:-process}"
    wait_for node 30 curl -sf "http://127.0.0.1:$NODE_PORT/healthz"
  fi
  start_monitoring
  start_postgres

  KUBECONFIG=$KUBECONFIG_PATH kubectl apply --server-side --field-manager=troupe-cluster -f "$REPO/manifests/crds/" >/dev/null
  KUBECONFIG=$KUBECONFIG_PATH kubectl wait --for=condition=Established --timeout=60s \
    crd/actors.troupe.dev crd/actorpools.troupe.dev >/dev/null
  start_operator
  log "up in $((SECONDS - t0))s"
  cmd_status
}

# Prometheus scrapes the worker pods (file_sd written by the node agent stands in for pod
# discovery) and evaluates Troupe's alert rules with short windows; Alertmanager sends firing
# alerts to the operator's webhook with a bearer token generated here.
start_monitoring() {
  command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null || {
    log "prometheus/alertmanager not installed (e2e/tools/install.sh monitoring): Prometheus analysis and alerts are off"
    return 0
  }
  local m=$DIR/monitoring
  mkdir -p "$m"
  [ -s "$DIR/alert-token" ] || (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$DIR/alert-token")
  [ -f "$m/targets.json" ] || echo '[]' >"$m/targets.json"
  # The shipped rules use 1m windows; here they are 5s so that tests see alerts in seconds.
  sed -e 's/\[1m\]/[5s]/g' -e 's/for: 1m/for: 0s/' "$REPO/charts/troupe/files/troupe-rules.yaml" >"$m/rules.yaml"
  cat >"$m/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$m/rules.yaml"]
alerting:
  alertmanagers: [{static_configs: [{targets: ["127.0.0.1:$AM_PORT"]}]}]
scrape_configs:
  - job_name: troupe-workers
    file_sd_configs: [{files: ["$m/targets.json"], refresh_interval: 1s}]
  - job_name: troupe-operator
    static_configs: [{targets: ["127.0.0.1:$OPERATOR_PORT"]}]
EOF
  cat >"$m/alertmanager.yml" <<EOF
route:
  receiver: troupe
  group_by: [alertname, namespace, pool]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1m
receivers:
  - name: troupe
    webhook_configs:
      - url: http://127.0.0.1:$OPERATOR_PORT/v1/alerts
        send_resolved: true
        http_config:
          authorization: {credentials_file: "$DIR/alert-token"}
EOF
  start prometheus prometheus --config.file "$m/prometheus.yml" --storage.tsdb.path "$m/prometheus-data" \
    --web.listen-address "127.0.0.1:$PROM_PORT" --web.enable-lifecycle
  start alertmanager prometheus-alertmanager --config.file "$m/alertmanager.yml" \
    --storage.path "$m/alertmanager-data" --web.listen-address "127.0.0.1:$AM_PORT" --cluster.listen-address=
  wait_for prometheus 30 curl -sf "http://127.0.0.1:$PROM_PORT/-/ready"
  wait_for alertmanager 30 curl -sf "http://127.0.0.1:$AM_PORT/-/ready"
}

# PostgreSQL, the actors' state store (persistence modes Interval and EveryMessage), as a plain
# process on loopback with a password of its own. PostgreSQL refuses to run as root: as root it
# runs as the `postgres` user (Debian's package makes it) from a data folder under /tmp that user
# can reach. The connection string is written to $DIR/postgres.dsn (mode 600) for the Secret a
# pool names; nothing else holds it.
start_postgres() {
  local pg=$HERE/tools/postgres.sh
  "$pg" bin >/dev/null 2>&1 || {
    log "PostgreSQL not installed (e2e/tools/install.sh postgres): the persistence modes Interval and EveryMessage have no store"
    return 0
  }
  local data=$DIR/postgres
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { log "no postgres user to run PostgreSQL as: no state store"; return 0; }
    data=/tmp/troupe-postgres-$PG_PORT
  fi
  if [ ! -s "$DIR/postgres.password" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$DIR/postgres.password")
  fi
  "$pg" init "$data" "$DIR/postgres.password" "$LOGS/postgres.log" || die "initdb failed (log $LOGS/postgres.log)"
  start postgres "$pg" run "$data" "$PG_PORT"
  (umask 077; printf '%s' "postgres://troupe:$(cat "$DIR/postgres.password")@127.0.0.1:$PG_PORT/postgres" >"$DIR/postgres.dsn")
  wait_for postgres 30 "$("$pg" bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"
}

# The operator runs as a local process too (its pods would need a container engine); short
# worker leases make failover quick to watch.
start_operator() {
  [ -x "$PROFILE_DIR/troupe-operator" ] || return 0
  # TROUPE_OPERATOR=none: no operator process; it comes from `helm install` (as a container).
  [ "${TROUPE_OPERATOR:-process}" != none ] || return 0
  # The operator and the workers talk to the API server directly (TLS client certificate), as
  # in a cluster; the front is for kubectl.
  start operator env KUBECONFIG="$ADMIN_KUBECONFIG" RUST_LOG="${RUST_LOG:-info,kube=warn}" POD_NAME=troupe-operator-local \
    "$PROFILE_DIR/troupe-operator" --listen "127.0.0.1:$OPERATOR_PORT" \
    --worker-env "KUBECONFIG=$ADMIN_KUBECONFIG" --worker-env TROUPE_LEASE_DURATION=6s \
    --worker-env TROUPE_LEASE_RENEW=1s --worker-env RUST_LOG="${TROUPE_WORKER_LOG:-info,kube=warn}" $(monitoring_flags)
  wait_for operator 30 curl -sf "http://127.0.0.1:$OPERATOR_PORT/readyz"
}

# A second replica, configured as the first, that waits for leadership (hung-leader faults).
start_second_operator() {
  [ -x "$PROFILE_DIR/troupe-operator" ] || die "$PROFILE_DIR/troupe-operator is missing: run cargo build"
  start operator-second env KUBECONFIG="$ADMIN_KUBECONFIG" RUST_LOG="${RUST_LOG:-info,kube=warn}" POD_NAME=troupe-operator-second \
    "$PROFILE_DIR/troupe-operator" --listen "127.0.0.1:$SECOND_OPERATOR_PORT" \
    --worker-env "KUBECONFIG=$ADMIN_KUBECONFIG" --worker-env TROUPE_LEASE_DURATION=6s \
    --worker-env TROUPE_LEASE_RENEW=1s --worker-env RUST_LOG="${TROUPE_WORKER_LOG:-info,kube=warn}" $(monitoring_flags)
  wait_for operator-second 30 curl -sf "http://127.0.0.1:$SECOND_OPERATOR_PORT/readyz"
}

monitoring_flags() {
  if [ -s "$DIR/alert-token" ]; then
    echo "--prometheus-url http://127.0.0.1:$PROM_PORT --alert-token-file $DIR/alert-token"
  fi
}

stop() { # name
  local f=$PIDS/$1.pid
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do running "$1" || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    # SIGKILL is asynchronous: wait until the process is gone (or a zombie, which holds no
    # sockets), so that a restart right after finds its ports free.
    for _ in $(seq 1 50); do running "$1" || break; sleep 0.1; done
    log "stopped $1"
  fi
  rm -f "$f"
}

cmd_down() {
  stop operator-second
  stop operator
  stop node
  # Pods are started in their own process groups by the node agent; make sure none outlives it.
  if [ -d "$DIR/pods" ]; then
    for f in "$DIR"/pods/*.pid; do
      [ -f "$f" ] || continue
      kill -KILL -- "-$(cat "$f")" 2>/dev/null || kill -KILL "$(cat "$f")" 2>/dev/null || true
      rm -f "$f"
    done
  fi
  # Containers of the podman runtime, labelled with the node's state folder.
  if [ -d "$DIR/pods" ] && command -v podman >/dev/null; then
    local ids; ids=$(podman ps -aq --filter "label=dev.troupe.node=$(cd "$DIR/pods" && pwd -P)" 2>/dev/null || true)
    [ -z "$ids" ] || podman rm -f -t 0 $ids >/dev/null 2>&1 || true
  fi
  stop postgres
  stop alertmanager
  stop prometheus
  stop front
  stop apiserver
  stop etcd
}

cmd_status() {
  for p in etcd apiserver front node operator prometheus alertmanager postgres; do
    if running "$p"; then echo "  $p: running (pid $(cat "$PIDS/$p.pid"), log $LOGS/$p.log)"; else echo "  $p: stopped"; fi
  done
  echo "  kubeconfig: $KUBECONFIG_PATH   (kubectl via the front at http://127.0.0.1:$FRONT_PORT)"
  if running prometheus; then echo "  prometheus: http://127.0.0.1:$PROM_PORT   alertmanager: http://127.0.0.1:$AM_PORT"; fi
  if running postgres; then echo "  postgres (state store): 127.0.0.1:$PG_PORT, connection string in $DIR/postgres.dsn"; fi
  echo "  admin kubeconfig: $ADMIN_KUBECONFIG   (TLS client certificate, straight to the API server)"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_PATH"; echo "export PATH=${TROUPE_CACHE:-$HOME/.cache/troupe}/bin:\$PATH" ;;
  clean) cmd_down; rm -rf "$DIR" "/tmp/troupe-postgres-$PG_PORT" ;;
  restart-operator) stop operator; start_operator ;;
  start-operator) start_operator ;;
  restart-apiserver) BIN=$(tools_bin); stop apiserver; start_apiserver ;;
  restart-etcd) BIN=$(tools_bin); stop etcd; start_etcd ;;
  start-second-operator) start_second_operator ;;
  stop-second-operator) stop operator-second ;;
  *) echo "usage: $0 up|down|status|env|clean|restart-operator|start-operator|restart-apiserver|restart-etcd|start-second-operator|stop-second-operator" >&2; exit 2 ;;
esac

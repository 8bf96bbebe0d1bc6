#!/usr/bin/env bash
# `make dev`: with the local control plane up, apply the examples and say what runs and how to
# look at it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DIR=${TROUPE_CLUSTER_DIR:-$REPO/.local/cluster}
export KUBECONFIG=$DIR/kubeconfig
export PATH=${TROUPE_CACHE:-$HOME/.cache/troupe}/bin:${TROUPE_TARGET_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/debug}:$PATH
NS=${TROUPE_DEV_NAMESPACE:-demo}

# The workers' API token: a Secret, which the node agent reads as a kubelet does.
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
if ! TOKEN=$(kubectl get secret troupe-worker-token -n "$NS" -o jsonpath='{.data.token}' 2>/dev/null | base64 -d) || [ -z "$TOKEN" ]; then
  TOKEN=$(openssl rand -hex 16 | tr -d '\n')
  kubectl create secret generic troupe-worker-token -n "$NS" --from-literal=token="$TOKEN" >/dev/null
fi

for f in "$REPO"/manifests/examples/*.yaml; do
  kubectl apply --namespace "$NS" -f "$f" >/dev/null
done
# Durable counters, when the control plane runs PostgreSQL: the Secret holds its address.
if [ -s "$DIR/postgres.dsn" ]; then
  kubectl create secret generic state-store -n "$NS" --from-file=dsn="$DIR/postgres.dsn" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply --namespace "$NS" -f "$REPO/manifests/examples/durable/counters.yaml" >/dev/null
fi

echo "waiting for the actors to run…"
for _ in $(seq 1 60); do
  total=$(kubectl get actors -n "$NS" --no-headers 2>/dev/null | wc -l)
  running=$(kubectl get actors -n "$NS" --no-headers 2>/dev/null | grep -c ' Running ' || true)
  [ "$total" -gt 0 ] && [ "$running" -eq "$total" ] && break
  sleep 1
done

cat <<EOT

Troupe local control plane is up; the examples are applied in namespace "$NS".
$("$HERE/cluster.sh" status)

What is in the cluster now:
EOT
kubectl get troupe --namespace "$NS"
echo
kubectl get deployments,leases --namespace "$NS" 2>/dev/null || true
cat <<EOT

Look around (the same kubectl you use on a cluster):
  export KUBECONFIG=$KUBECONFIG PATH=\$HOME/.cache/troupe/bin:\$PATH
  kubectl get troupe -n $NS                 # pools and actors
  kubectl get actors -n $NS -w              # watch actors change phase
  kubectl describe actorpool payments -n $NS
  kubectl explain actorpool.spec.strategy.canary
  curl -s http://127.0.0.1:${TROUPE_NODE_PORT:-28081}/pods   # worker pods the node agent runs
  ls $DIR/pods/logs                        # one log file per container
  kubectl scale actorpool counters -n $NS --replicas 3   # watch actors rebalance
  kubectl get actorpool durable-counters -n $NS   # counters kept in PostgreSQL (EveryMessage), if it runs

Roll out a bad revision and watch it roll itself back (kubectl-troupe is in target/debug):
  export PATH=$(dirname "$(command -v kubectl-troupe 2>/dev/null || echo target/debug/x)"):\$PATH
  kubectl patch actorpool payments -n $NS --type=json \\
    -p '[{"op":"replace","path":"/spec/template/spec/containers/0/env/0/value","value":"0.5"}]'
  kubectl troupe status payments -n $NS -w
  kubectl get events -n $NS --field-selector involvedObject.kind=ActorPool
  Prometheus: http://127.0.0.1:${TROUPE_PROMETHEUS_PORT:-28083}  Alertmanager: http://127.0.0.1:${TROUPE_ALERTMANAGER_PORT:-28084}

Talk to an actor through any worker (token: $TOKEN):
  IP=\$(kubectl get lease -n $NS -o jsonpath='{.items[0].metadata.annotations.troupe\.dev/address}')
  curl -s -H "Authorization: Bearer $TOKEN" -d 5 http://\$IP/v1/namespaces/$NS/actors/visits/ask

Stop everything with: make cluster-down
EOT

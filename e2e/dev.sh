#!/usr/bin/env bash
# `make dev`: with the local control plane up, apply the examples and say what runs and how to
# look at it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DIR=${TROUPE_CLUSTER_DIR:-$REPO/.local/cluster}
export KUBECONFIG=$DIR/kubeconfig
export PATH=${TROUPE_CACHE:-$HOME/.cache/troupe}/bin:$PATH
NS=${TROUPE_DEV_NAMESPACE:-demo}

for f in "$REPO"/manifests/examples/*.yaml; do
  kubectl apply --namespace "$NS" -f "$f" >/dev/null
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

Stop everything with: make cluster-down
EOT
if [ ! -x "${CARGO_TARGET_DIR:-$REPO/target}/debug/troupe-operator" ]; then
  cat <<EOT

Note: this build has no operator binary yet, so nothing places the actors: their PHASE stays
empty. See docs/status.md for what is built so far.
EOT
fi

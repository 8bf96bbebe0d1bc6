#!/usr/bin/env bash
# The chart's checks, run by `make lint` (so by CI):
#   1. helm lint --strict, with the defaults and with every optional part on
#   2. the rendered manifests (defaults, and every optional part on; CRDs included) validated
#      against the upstream Kubernetes OpenAPI schemas with kubernetes-validate --strict (unknown
#      fields are errors), for the oldest Kubernetes the chart supports and the newest the package
#      knows. The Prometheus Operator's kinds (ServiceMonitor, PodMonitor, PrometheusRule) have no
#      upstream schema: they, and only they, may go unvalidated; e2e/tests/chart/ checks them.
#   3. checkov's static security scan of the same manifests: no failed check. A finding by design
#      is skipped in the object itself (a checkov.io/skipN annotation with its reason, and a
#      comment saying why; templates/deployment.yaml), and is listed here as skipped.
#   4. charts/troupe/README.md's values table is the one values.yaml's comments give.
# checkov and kubernetes-validate come from `make tools` (e2e/tools/install.sh chart-checks).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${TROUPE_CACHE:-$HOME/.cache/troupe}
export PATH=$CACHE/bin:$PATH
cd "$REPO"

CHART=charts/troupe
OLDEST_K8S=1.30.0   # Chart.yaml kubeVersion
NEWEST_K8S=1.37.0   # the newest schemas kubernetes-validate (install.sh) ships
ALL_ON=(
  --set monitoring.serviceMonitor.enabled=true --set monitoring.podMonitor.enabled=true
  --set monitoring.prometheusRule.enabled=true --set monitoring.dashboard.enabled=true
  --set networkPolicy.enabled=true --set admissionPolicy.enabled=true
  --set webhook.existingSecret=troupe-webhook
  --set console.enabled=true --set console.existingSecret=troupe-console --set console.actions.enabled=true
  --set image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000
  --set workers.image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000
)
UNVALIDATED_KINDS='^(PodMonitor|ServiceMonitor|PrometheusRule)$'

for tool in helm kubernetes-validate checkov; do
  command -v "$tool" >/dev/null || { echo "chart-check: $tool not found: run \`make tools\`" >&2; exit 1; }
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
step() { echo "== chart: $*"; }
t0=$SECONDS

step "helm lint --strict (defaults; every optional part on)"
helm lint --strict --quiet "$CHART" >/dev/null
helm lint --strict --quiet "$CHART" "${ALL_ON[@]}" >/dev/null
# The rendered manifests, one folder for checkov, one file per case for kubernetes-validate.
mkdir -p "$out/manifests"
helm template troupe "$CHART" --namespace troupe-system --include-crds >"$out/manifests/defaults.yaml"
helm template troupe "$CHART" --namespace troupe-system --include-crds "${ALL_ON[@]}" >"$out/manifests/all-on.yaml"

step "kubernetes-validate --strict against Kubernetes $OLDEST_K8S and $NEWEST_K8S"
for k in "$OLDEST_K8S" "$NEWEST_K8S"; do
  for f in "$out"/manifests/*.yaml; do
    if ! kubernetes-validate --strict --kubernetes-version "$k" "$f" >"$out/validate.log" 2>&1; then
      grep -v '^INFO' "$out/validate.log" >&2
      echo "chart-check: $(basename "$f") does not validate against Kubernetes $k" >&2
      exit 1
    fi
    passed=$(grep -c '^INFO .* passed for resource' "$out/validate.log" || true)
    unknown=$(sed -n "s/^WARN .*Couldn't find schema for kind \([A-Za-z]*\) .*/\1/p" "$out/validate.log" | sort -u)
    for kind in $unknown; do
      if ! [[ $kind =~ $UNVALIDATED_KINDS ]]; then
        echo "chart-check: no Kubernetes $k schema for kind $kind in $(basename "$f"): a misspelt kind or apiVersion?" >&2
        exit 1
      fi
    done
    if grep -v "^INFO\|Couldn't find schema" "$out/validate.log" >&2; then
      echo "chart-check: kubernetes-validate said more than it should (above)" >&2
      exit 1
    fi
    echo "   $k $(basename "$f"): $passed objects valid; without an upstream schema: $(echo $unknown | tr ' ' ',' | sed 's/^$/none/')"
  done
done

step "checkov (static security scan)"
# Offline: no guideline download, no platform mapping; a file checkov cannot parse is an error.
if ! BC_SKIP_MAPPING=TRUE CKV_PARSE_ERROR_FAIL=true checkov --directory "$out/manifests" --framework kubernetes \
    --skip-download --compact --output cli >"$out/checkov.log" 2>&1; then
  grep -v '^\s*$' "$out/checkov.log" | grep -v 'PASSED for resource' >&2 || true
  echo "chart-check: checkov found what the chart does not justify: fix it, or skip it in the object with its reason" >&2
  exit 1
fi
summary=$(grep -m1 'Passed checks:' "$out/checkov.log" || true)
[ -n "$summary" ] || { cat "$out/checkov.log" >&2; echo "chart-check: checkov printed no result" >&2; exit 1; }
echo "   $summary"
awk '/^Check: /{id=$2; sub(/:$/, "", id)} /Suppress comment:/{c=$0; sub(/.*Suppress comment: /, "", c); print "   skipped " id ": " c}' "$out/checkov.log" \
  | sort -u

step "values table of $CHART/README.md"
python3 e2e/tools/chart-readme.py --check
echo "== chart: all checks passed in $((SECONDS - t0))s"

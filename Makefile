# Troupe — the entry points a person types. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CACHE ?= $(or $(TROUPE_CACHE),$(HOME)/.cache/troupe)
export TROUPE_CACHE := $(CACHE)
TOOLS := $(CACHE)/bin
export PATH := $(TOOLS):$(HOME)/.cargo/bin:$(PATH)

# The dev cluster and the test cluster use different folders and ports, so both can run at once.
# Every port is below 32768: ports in the kernel's ephemeral range (32768–60999) can be taken at
# random by any outgoing connection (the API server's own loopback client took 38080 once).
DEV_ENV  := TROUPE_CLUSTER_DIR=$(CURDIR)/.local/cluster
TEST_ENV := TROUPE_CLUSTER_DIR=$(CURDIR)/.local/test-cluster TROUPE_ETCD_PORT=13790 \
            TROUPE_APISERVER_PORT=16443 TROUPE_FRONT_PORT=18080 TROUPE_NODE_PORT=18081 \
            TROUPE_POD_SUBNET=127.20
# The long chaos run restarts the operator, API server and etcd: it gets a control plane of its own.
CHAOS_ENV := TROUPE_CLUSTER_DIR=$(CURDIR)/.local/chaos-cluster TROUPE_ETCD_PORT=14790 \
            TROUPE_APISERVER_PORT=17443 TROUPE_FRONT_PORT=19080 TROUPE_NODE_PORT=19081 \
            TROUPE_POD_SUBNET=127.30
# The console's figures (10,000 actors) too, so that `make bench-operator`, which wipes the dev
# cluster, can never wipe it in the middle of a run (nor the other way round).
BENCH_ENV := TROUPE_CLUSTER_DIR=$(CURDIR)/.local/bench-cluster TROUPE_ETCD_PORT=12790 \
            TROUPE_APISERVER_PORT=12443 TROUPE_FRONT_PORT=12080 TROUPE_NODE_PORT=12081 \
            TROUPE_POD_SUBNET=127.40
NEXTEST := $(shell cargo nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: tools
tools: ## Install or build the local control plane's parts (cached in ~/.cache/troupe, keyed by version)
	@e2e/tools/install.sh all >/dev/null

.PHONY: build
build: ## Build every binary of the workspace
	cargo build --workspace --bins

.PHONY: crds
crds: ## Regenerate the CRD YAML from the types (manifests/crds, charts/troupe/crds) and manifests/install.yaml
	cargo run -q -p troupe-crds --bin crdgen
	@$(MAKE) -s manifests

.PHONY: manifests
manifests: tools ## Render manifests/install.yaml from the chart, and the chart README's values table
	@helm template troupe charts/troupe --namespace troupe-system --include-crds > manifests/install.yaml
	@echo "wrote manifests/install.yaml"
	@python3 e2e/tools/chart-readme.py

.PHONY: lint
lint: tools ## cargo fmt --check, clippy -D warnings, CRD drift check, the chart's checks (helm lint --strict, schemas, checkov, values table)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo run -q -p troupe-crds --bin crdgen -- --check
	e2e/tools/chart-check.sh

# Images (issue 11): static binaries on `FROM scratch`, tagged with the chart's appVersion so the
# chart (troupe/operator) and the examples (troupe/worker) name what was built. podman here,
# docker elsewhere. The static release build has a target folder of its own, keyed by the
# toolchain, so it does not thrash the debug build the tests use.
CONTAINER_ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
APP_VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' charts/troupe/Chart.yaml)
RUSTC_KEY = $(shell rustc --version | tr -cd '[:alnum:].')
STATIC_TARGET_DIR ?= $(CACHE)/target-static-$(RUSTC_KEY)
STATIC_TRIPLE := x86_64-unknown-linux-gnu
IMAGE_SOURCE := $(shell sed -n 's/^repository *= *"\(.*\)"/\1/p' Cargo.toml)
IMAGE_REVISION = $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# podman reads our containers.conf (runtime runc, no default ulimits; see e2e/tools/install.sh).
export CONTAINERS_CONF ?= $(if $(wildcard $(CACHE)/containers.conf),$(CACHE)/containers.conf)

.PHONY: static
static: ## Build the static release binaries the images hold (troupe-operator, troupe-worker)
	RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR=$(STATIC_TARGET_DIR) \
	  cargo build --profile image --target $(STATIC_TRIPLE) -p troupe-operator -p troupe-worker \
	  --bin troupe-operator --bin troupe-worker

.PHONY: images
images: static ## Build the operator and worker images (troupe/operator:<appVersion>, troupe/worker:<appVersion>)
	@for name in operator worker; do \
	  ctx=$(STATIC_TARGET_DIR)/image-context/$$name; rm -rf $$ctx; mkdir -p $$ctx; \
	  cp $(STATIC_TARGET_DIR)/$(STATIC_TRIPLE)/image/troupe-$$name $$ctx/; \
	  cp /etc/ssl/certs/ca-certificates.crt $$ctx/; \
	  $(CONTAINER_ENGINE) build -q -f images/$$name/Containerfile -t troupe/$$name:$(APP_VERSION) \
	    --build-arg VERSION=$(APP_VERSION) --build-arg REVISION=$(IMAGE_REVISION) \
	    --build-arg SOURCE=$(IMAGE_SOURCE) $$ctx >/dev/null || exit 1; \
	  echo "built troupe/$$name:$(APP_VERSION) ($$($(CONTAINER_ENGINE) image inspect --format '{{.Size}}' troupe/$$name:$(APP_VERSION)) bytes)"; \
	done

.PHONY: cluster-up
cluster-up: tools build ## Start the local control plane (etcd, API server, kubectl front, node agent); idempotent
	@$(DEV_ENV) e2e/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and every pod it runs
	@$(DEV_ENV) e2e/cluster.sh down

.PHONY: dev
dev: cluster-up ## The main job: control plane up, examples applied, and how to look at it
	@$(DEV_ENV) e2e/dev.sh

.PHONY: unit
unit: ## Unit tests and tests of pure logic (no server)
ifeq ($(NEXTEST),yes)
	cargo nextest run --workspace --no-fail-fast
else
	cargo test --workspace --exclude troupe-e2e --no-fail-fast
	cargo test -p troupe-e2e --lib --bins --no-fail-fast
endif

.PHONY: e2e
e2e: tools build ## End-to-end suite against a fresh local control plane of its own (E2E_FILTER='test(name)' runs a subset)
	@$(TEST_ENV) e2e/cluster.sh clean >/dev/null 2>&1 || true
	@$(TEST_ENV) e2e/cluster.sh up || { $(TEST_ENV) e2e/cluster.sh down; exit 1; }
	@set -o pipefail; status=0; \
	  export TROUPE_KUBECONFIG=$(CURDIR)/.local/test-cluster/kubeconfig TROUPE_NODE_URL=http://127.0.0.1:18081 \
	         TROUPE_CLUSTER_DIR=$(CURDIR)/.local/test-cluster; \
	  if [ "$(NEXTEST)" = yes ]; then cargo nextest run -p troupe-e2e --profile e2e --no-fail-fast $(if $(E2E_FILTER),-E '$(E2E_FILTER)') || status=$$?; \
	  else cargo test -p troupe-e2e --test '*' --no-fail-fast -- --test-threads 2 || status=$$?; fi; \
	  $(TEST_ENV) e2e/cluster.sh down; exit $$status

.PHONY: chaos
chaos: tools build ## The long chaos run (300 actors, 5 workers, every fault class) on a fresh control plane of its own; TROUPE_CHAOS_SEED=… reproduces one
	@$(CHAOS_ENV) e2e/cluster.sh clean >/dev/null 2>&1 || true
	@$(CHAOS_ENV) e2e/cluster.sh up || { $(CHAOS_ENV) e2e/cluster.sh down; exit 1; }
	@set -o pipefail; status=0; \
	  export TROUPE_KUBECONFIG=$(CURDIR)/.local/chaos-cluster/kubeconfig TROUPE_NODE_URL=http://127.0.0.1:19081 \
	         TROUPE_CLUSTER_DIR=$(CURDIR)/.local/chaos-cluster; \
	  if [ "$(NEXTEST)" = yes ]; then cargo nextest run -p troupe-e2e --profile e2e --run-ignored only --no-capture \
	      -E 'binary(chaos) & test(chaos_long)' || status=$$?; \
	  else cargo test -p troupe-e2e --test chaos -- --ignored --nocapture chaos_long || status=$$?; fi; \
	  $(CHAOS_ENV) e2e/cluster.sh down; exit $$status

.PHONY: test
test: tools build unit e2e ## Set up and pass every test: unit tests, then the end-to-end suite

.PHONY: bench
bench: ## Benchmarks, each beside a bare tokio baseline of the same run (record figures in docs/benchmarks.md)
	cargo bench -p troupe-worker --bench host

.PHONY: bench-persistence
bench-persistence: tools ## Tell throughput by persistence mode (OnMove, Interval, EveryMessage) on the dev control plane's PostgreSQL
	@$(DEV_ENV) e2e/cluster.sh up >/dev/null
	TROUPE_STORE_DSN="$$(cat .local/cluster/postgres.dsn)" cargo bench --profile $${BENCH_PROFILE:-dev} -p troupe-worker --bench persistence

.PHONY: bench-operator
bench-operator: tools build ## Operator figures on a fresh dev cluster (its state is wiped first): apply→Running p50/p99, steady-state writes, failover, RSS
	@$(DEV_ENV) e2e/cluster.sh clean >/dev/null 2>&1 || true
	@$(DEV_ENV) e2e/cluster.sh up || { $(DEV_ENV) e2e/cluster.sh down; exit 1; }
	$${CARGO_TARGET_DIR:-target}/debug/troupe-bench --kubeconfig .local/cluster/kubeconfig --admin-kubeconfig .local/cluster/admin.kubeconfig \
	  --node-url http://127.0.0.1:28081 --operator-pid-file .local/cluster/pids/operator.pid --actors $${ACTORS:-1000} --workers 4

.PHONY: bench-console
bench-console: tools build ## Console figures on a fresh control plane of its own (wiped first, stopped after): 10,000 actors, page render times, change→page, memory, 50 open browsers (KUBECTL_TROUPE=… another build of the plugin; COMPARE=… a second build beside it)
	@$(BENCH_ENV) e2e/cluster.sh clean >/dev/null 2>&1 || true
	@$(BENCH_ENV) e2e/cluster.sh up || { $(BENCH_ENV) e2e/cluster.sh down; exit 1; }
	@status=0; $${CARGO_TARGET_DIR:-target}/debug/console-bench --kubeconfig .local/bench-cluster/admin.kubeconfig \
	  --kubectl-troupe $${KUBECTL_TROUPE:-$${CARGO_TARGET_DIR:-target}/debug/kubectl-troupe} --actors $${ACTORS:-10000} \
	  $${COMPARE:+--compare-kubectl-troupe $$COMPARE} || status=$$?; \
	  $(BENCH_ENV) e2e/cluster.sh down; exit $$status

.PHONY: bench-moves
bench-moves: tools build ## Durable actors' figures on a fresh control plane of its own (wiped first, stopped after): 1,000 counters moved at once (per-actor handoff p50/p99), recovery of 1,000 EveryMessage counters after SIGKILL (ACTORS=2000: half of them move or crash)
	@$(BENCH_ENV) e2e/cluster.sh clean >/dev/null 2>&1 || true
	@$(BENCH_ENV) e2e/cluster.sh up || { $(BENCH_ENV) e2e/cluster.sh down; exit 1; }
	@status=0; $${CARGO_TARGET_DIR:-target}/debug/move-bench --kubeconfig .local/bench-cluster/kubeconfig \
	  --node-url http://127.0.0.1:12081 --store-dsn-file .local/bench-cluster/postgres.dsn --actors $${ACTORS:-2000} || status=$$?; \
	  $(BENCH_ENV) e2e/cluster.sh down; exit $$status

.PHONY: clean
clean: ## Stop both clusters and remove their state and the build
	-@$(DEV_ENV) e2e/cluster.sh clean
	-@$(TEST_ENV) e2e/cluster.sh clean
	cargo clean

# twinserve — every command a user or CI types. `make up` and `make test` set everything up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONVERT_VENV := .venv-convert
CONVERT_STAMP := $(CONVERT_VENV)/.installed
ARTIFACTS := artifacts
MANIFEST := $(ARTIFACTS)/manifest.json
MODEL_SOURCES := $(wildcard models/*.py models/zoo/*.py serving/torchserve/*handler.py) $(wildcard serving/torchserve/model-config/*.yaml)
PYTEST_ARGS ?=
QUICK ?=
BENCH_ARGS ?=
SLICES ?= 6
_QUICK := $(if $(filter 1 yes true,$(QUICK)),--quick)
# `make engine` remembers the podman engine it started here; every later make command talks to it.
-include .engine/engine.mk
STACK ?=
TF_SIDE ?=
# TensorFlow's C++ INFO and WARNING lines drown the progress users want to see; errors still print.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help setup java tools browser coldstart export parity add-model remove-model convert-venv engine images up down status test test-containers lint format clean gpu-check compose-bin protos bench-gateway bench bench-batching locust chaos soak k8s k8s-artifacts

help: ## list the commands
	@grep -hE '^[a-z0-9-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP) java tools browser ## create .venv with the pinned dependencies and make sure a JDK, hey, wrk and Chromium are present

$(STAMP): requirements/gateway.txt requirements/dev.txt requirements/constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	# torch==2.13.0 resolves to the local CPU wheel; the constraints file pins every transitive package.
	$(PY) -m pip install --quiet -r requirements/dev.txt -c requirements/constraints.txt
	@touch $@

java: ## TorchServe's frontend needs Java 17; install it with apt when missing
	@if ! command -v java >/dev/null 2>&1; then \
	  echo "java not found: installing openjdk-17-jdk-headless with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >/dev/null; \
	fi

tools: ## hey and wrk, the independent load tools the bench cross-checks against; installed with apt when missing
	@missing=$$(for t in hey wrk; do command -v $$t >/dev/null 2>&1 || echo $$t; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing $$missing with apt-get (the bench's independent cross-check)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

browser: ## Debian's Chromium and chromedriver, for the web UI's browser tests; installed with apt when missing
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  echo "chromium or chromedriver not found: installing chromium chromium-driver with apt-get (browser tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

export: $(MANIFEST) ## train/seed, port and export the built-in models (and registered ones missing artifacts) to artifacts/

$(MANIFEST): $(STAMP) $(MODEL_SOURCES)
	$(PY) -m models.export --out $(ARTIFACTS)

parity: $(MANIFEST) ## load both exported artifacts from disk and prove they agree (writes artifacts/parity.json)
	$(PY) -m models.parity --artifacts $(ARTIFACTS)

add-model: $(STAMP) ## export a spec to both stacks, prove parity, register it: SPEC=path/to/spec.py NAME=name
	@test -n "$(SPEC)" && test -n "$(NAME)" || { echo "usage: make add-model SPEC=path/to/spec.py NAME=name"; exit 2; }
	@$(PY) -m models.addmodel add --spec "$(SPEC)" --name "$(NAME)"

remove-model: $(STAMP) ## undo add-model (registration and artifacts; built-ins are refused): NAME=name
	@test -n "$(NAME)" || { echo "usage: make remove-model NAME=name"; exit 2; }
	@$(PY) -m models.addmodel remove --name "$(NAME)"

convert-venv: $(CONVERT_STAMP) ## the ONNX converter's own venv (onnx2tf, TF 2.19); add-model makes it when a spec has no build_keras()

# Full freeze installed with --no-deps: onnx2tf's pins stay exactly as measured; 2 min 17 s here.
$(CONVERT_STAMP): requirements/convert.txt
	@test -x $(CONVERT_VENV)/bin/python || $(PYTHON) -m venv $(CONVERT_VENV)
	$(CONVERT_VENV)/bin/python -m pip install --quiet --upgrade pip==25.3
	$(CONVERT_VENV)/bin/python -m pip install --quiet --no-deps -r requirements/convert.txt
	@touch $@

engine: ## a container engine: nothing with Docker; else install and start podman (Docker API socket), remembered
	@bash scripts/engine.sh

images: $(STAMP) compose-bin ## build the container images (a local Debian base and wheelhouse where no registry answers)
	@PY=$(PY) GPU=$(GPU) TF_SIDE=$(TF_SIDE) bash -c 'bash scripts/images.sh all $$(bash scripts/compose.sh files)'

up: setup $(MANIFEST) ## start both stacks: compose if an engine answers (STACK=compose|native forces; GPU=0: CPU only; TF_SIDE=standin)
	@PY=$(PY) ARTIFACTS=$(ARTIFACTS) GPU=$(GPU) STACK=$(STACK) TF_SIDE=$(TF_SIDE) bash scripts/up.sh

down: ## stop what `make up` started (containers and native services)
	@PY=$(PY) bash scripts/down.sh

gpu-check: $(MANIFEST) ## on a CUDA machine (own venv .venv-gpu, CUDA torch): handler and raw forward p50 -> docs/gpu.md; exit 2 without a GPU
	@ARTIFACTS=$(ARTIFACTS) bash scripts/gpu-check.sh

bench: setup $(MANIFEST) ## load-test every path of the running stack (make up first) -> results/<run>/report.html; QUICK=1: < 3 min; MODELS=a,b (registered models too)
	$(PY) -m loadtest.run $(_QUICK) $(if $(STACK),--stack $(STACK)) $(if $(MODELS),--models $(MODELS)) $(BENCH_ARGS)

coldstart: setup $(MANIFEST) ## cold start per stack: process start to first correct answer, median of RUNS (default 5)
	$(PY) -m loadtest.coldstart --runs $(or $(RUNS),5) --artifacts $(ARTIFACTS) --out results/coldstart.json

bench-batching: setup $(MANIFEST) ## batching/worker configs, each on a restarted server -> Pareto front (QUICK=1: 4 configs)
	$(PY) -m loadtest.batching $(_QUICK) $(BENCH_ARGS)

locust: setup ## Locust web UI on http://127.0.0.1:8089: one user class per target of the running stack (make up first); runs saved in results/
	@$(PY) -m loadtest.webui $(BENCH_ARGS)

chaos: setup $(MANIFEST) ## faults under load through the real gateway (SIGKILL, slow backend, restarts, soak) -> docs/reliability.md
	$(PY) -m reliability.chaos $(CHAOS_ARGS)

soak: setup $(MANIFEST) ## 10-minute soak through the gateway at half the chaos rate: no errors, RSS growth < 10 %
	$(PY) -m reliability.chaos soak --minutes 10

protos: $(STAMP) ## regenerate contract/_generated from contract/protos (committed; a test checks it is current)
	$(PY) -m grpc_tools.protoc -I contract/protos --python_out=contract/_generated --pyi_out=contract/_generated contract/protos/*.proto

bench-gateway: $(STAMP) ## the gateway's added latency beside Envoy's, same upstream and load, judged; per-core ceilings (`make up` first)
	$(PY) -m loadtest.gatewaybench --run-dir run --out results/gateway-bench --slices $(SLICES) $(BENCH_ARGS)

k8s: $(STAMP) ## render Kubernetes manifests (KServe + plain Deployments, gateway HPA, Locust) into build/k8s/ and validate them
	$(PY) -m deploy.k8s render --out build/k8s $(if $(filter 0 no false,$(GPU)),--cpu) $(K8S_ARGS)
	$(PY) -m deploy.k8s validate --dir build/k8s

k8s-artifacts: $(MANIFEST) ## lay out artifacts/ as the model storage KServe and the plain Deployments read -> build/k8s-storage/
	$(PY) -m deploy.k8s artifacts --artifacts $(ARTIFACTS) --out build/k8s-storage

status: ## what runs, on which ports, and whether it is healthy (container services too)
	@bash scripts/compose.sh status
	@# Nothing native runs while the containers do: that is not a failure then.
	$(PY) -m supervisor status || test -f run/compose/state.json

compose-bin: $(STAMP) ## fetch the pinned docker compose v2 binary (static checks need no engine)
	@PY=$(PY) bash scripts/check-compose.sh --fetch-only

test: setup $(MANIFEST) compose-bin ## run the test suite (starts real servers on loopback)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint + format check), mypy, hadolint on every Dockerfile, docker compose config
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy contract supervisor models serving gateway loadtest reliability deploy
	$(VENV)/bin/hadolint serving/torchserve/Dockerfile serving/tfserving/Dockerfile serving/tfserving/standin/Dockerfile \
	  gateway/Dockerfile loadtest/Dockerfile deploy/base/Dockerfile deploy/prometheus/Dockerfile
	PY=$(PY) bash scripts/check-compose.sh

test-containers: setup $(MANIFEST) compose-bin ## the container path from nothing: engine, compose up, container tests, quick bench, down
	@PY=$(PY) GPU=$(GPU) TF_SIDE=$(TF_SIDE) bash scripts/test-containers.sh

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: down ## remove generated artifacts, results and run state (keeps .venv)
	rm -rf $(ARTIFACTS) run results .pytest_cache .mypy_cache .ruff_cache

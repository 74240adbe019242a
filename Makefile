# The two commands a new user runs: `make demo` (the main job) and `make test` (the tests).
# Both build .venv from this repository's own files. torch is pinned to the CPU wheel first:
# a bare `torch` requirement would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.hyperleaf-installed
PYTEST_ARGS ?=

.PHONY: demo test venv bench lint doctest clean venv-seg test-seg

venv: $(STAMP)

$(STAMP): pyproject.toml setup.cfg
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hyperleaf train

# `make test` = the linter and the import-direction contract (lint), the docstring examples
# (doctest), then the test suite.
test: lint doctest
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/bench_geometry.py
	$(PY) benchmarks/bench_hdgfb.py
	$(PY) benchmarks/bench_ship.py
	$(PY) benchmarks/bench_cli.py

lint: $(STAMP)
	$(VENV)/bin/ruff check hyperleaf tests benchmarks
	$(VENV)/bin/lint-imports --no-cache --no-logo --config .importlinter

# Every docstring example of the package (`>>>` lines) is run; those needing an optional extra
# or /work data say `# doctest: +SKIP` with the reason beside them.
doctest: $(STAMP)
	$(PY) -m pytest --doctest-modules hyperleaf -q -p no:cacheprovider -o addopts="" -o testpaths=""

# The segmentation extra (issue 12): segmentation-models-pytorch needs torchvision, and the only
# torchvision that imports on these machines is 0.29.1 beside torch 2.14.1 (a CUDA build, ~5.5 GB,
# served from local disk). It lives in its own venv so `make test` stays on the small CPU torch.
# test-seg sets HYPERLEAF_REQUIRE_SEG=1: there the seg tests FAIL instead of skipping when smp is missing.
VENV_SEG ?= .venv-seg
PY_SEG := $(VENV_SEG)/bin/python
TORCH_SEG_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP_SEG := $(VENV_SEG)/.hyperleaf-installed

venv-seg: $(STAMP_SEG)

$(STAMP_SEG): pyproject.toml setup.cfg
	@test -x $(PY_SEG) || $(PYTHON) -m venv $(VENV_SEG)
	@$(PY_SEG) -c "import torchvision" 2>/dev/null || $(PY_SEG) -m pip install --quiet $(TORCH_SEG_SPEC)
	$(PY_SEG) -m pip install --quiet -e ".[dev,seg]"
	@touch $(STAMP_SEG)

test-seg: $(STAMP_SEG)
	HYPERLEAF_REQUIRE_SEG=1 $(PY_SEG) -m pytest $(PYTEST_ARGS) $(wildcard tests/test_leafunet*.py tests/test_seg*.py)

clean:
	rm -rf $(VENV) $(VENV_SEG) .pytest_cache .hypothesis .ruff_cache build *.egg-info

# One install path behind both README commands. Every target is idempotent.
#   make demo   -- set up everything, then run the built-in MBPO demo
#   make test   -- set up everything, then run the test suite (all tiers; README, CI)
#   make test-fast -- the edit-loop tier: everything not marked `slow` (<= 3 min on 2 cores)
#   make test-numerics -- the `numerics` tests again under another CPU dispatch (CI's second pass)
#   make test-upstream -- upstream mbrl-lib's own tests against both patched bases (CI)
#   make lint   -- ruff check + ruff format --check + mypy vaml_ext;  make format -- ruff format (rewrites files)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deps-installed

.PHONY: install install-paper demo test test-fast test-numerics test-upstream lint format check-patches clean

install: $(STAMP)
	$(BIN)/vaml-patch apply mbrl-lib slbo
	$(BIN)/pip install -q --no-deps --no-build-isolation -e third_party/mbrl-lib
	@if [ -f patches/slbo/upstream.toml ] && [ -f third_party/slbo-patched/setup.py ]; then \
	  $(BIN)/pip install -q --no-deps --no-build-isolation -e third_party/slbo-patched; fi

# torch is pinned (requirements/base.txt: torch==2.13.0): a looser spec pulls
# gigabytes of CUDA wheels on CPU-only machines.
$(STAMP): requirements/base.txt requirements/test.txt requirements/dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements/base.txt -r requirements/test.txt -r requirements/dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps rliable==1.2.0
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The paper base: mbrl 0.2.0.dev3 (the authors' base, patches/mbrl-lib-dev3/) in its own
# venv and tree, beside the default base. Same pinned requirements (CPU torch), vaml_ext
# editable (so its mbrl.plugins entry point registers unchanged).
PAPER_VENV  ?= .venv-paper
PAPER_BIN   := $(PAPER_VENV)/bin
PAPER_STAMP := $(PAPER_VENV)/.deps-installed

install-paper: $(PAPER_STAMP)
	$(PAPER_BIN)/vaml-patch apply mbrl-lib-dev3
	$(PAPER_BIN)/pip install -q --no-deps --no-build-isolation -e third_party/mbrl-lib-dev3

$(PAPER_STAMP): requirements/base.txt requirements/test.txt pyproject.toml
	test -x $(PAPER_BIN)/python || $(PYTHON) -m venv $(PAPER_VENV)
	$(PAPER_BIN)/pip install -q --disable-pip-version-check -r requirements/base.txt -r requirements/test.txt
	$(PAPER_BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

demo: install
	$(BIN)/python -m vaml_ext.demo

test: install
	$(BIN)/python -m pytest -q --durations=15 tests

test-fast: install
	$(BIN)/python -m pytest -q --durations=10 -m "not slow" tests

# The bit-exact and stored-reference tests as another machine would run them: the machine's
# own (native) numerics under another CPU dispatch -- ATen's AVX2 kernels (another path than
# an AVX-512 machine's own) and MKL's compatible path (another path on every CPU). A test
# whose reference replays only where it was made fails here. (ATen's portable `default`
# kernels are tested in tests/runlog/test_numerics.py; a whole pass on them is 2-3x slower.)
test-numerics: install
	VAML_NUMERICS=native ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=SSE41 \
	  $(BIN)/python -m pytest -q --durations=10 -m numerics tests

# Upstream's own test suites (the pinned sdists' tests/) against both patched bases; every
# test passes but those listed, with reasons, in patches/<name>/upstream-tests.toml.
test-upstream: install install-paper
	$(BIN)/python -m vaml_ext.patching.upstream_tests mbrl-lib --python $(BIN)/python
	$(BIN)/python -m vaml_ext.patching.upstream_tests mbrl-lib-dev3 --python $(PAPER_BIN)/python

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy vaml_ext

format: $(STAMP)
	$(BIN)/ruff format .

check-patches: $(STAMP)
	$(BIN)/vaml-patch check

clean:
	rm -rf $(VENV) $(PAPER_VENV) third_party/mbrl-lib third_party/mbrl-lib-dev3 third_party/slbo-patched third_party/.cache

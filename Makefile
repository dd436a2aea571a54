# The two commands of the README: `make demo` and `make test`.
# Both create .venv on first use; torch/torchvision are pinned through
# constraints.txt at install time (CPU build here, CUDA build on GPU machines).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

.PHONY: install demo test lint clean

install: $(VENV)/.egobench-installed

$(VENV)/.egobench-installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e ".[test]"
	touch $@

demo: install
	$(VENV)/bin/egobench demo

test: install
	$(PY) -m pytest -q tests

lint: install
	$(VENV)/bin/ruff check egobench lego baselines reports tests scripts

clean:
	rm -rf runs .pytest_cache

# Two commands do all the set-up: `make demo` and `make test` (CI: everything; `make test-fast`
# leaves out the tests marked slow, for the edit-test loop).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# The torch / torchvision pair that compressai needs (torchvision is one of its dependencies);
# on this project's machines pip takes both from local disk.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
export GLOCAL_CODEC_DATA ?= $(abspath ../shared/data)

.PHONY: venv demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -e '.[test,eval,distributed,tasks]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m glocal_codec.demo

test: venv
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: venv
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

bench: venv
	$(PY) benchmarks/entropy_coding.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

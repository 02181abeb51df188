# Two entry points (see README): `make book` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV   ?= .venv
PROFILE ?= cpu
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test test-all venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	$(BIN)/diffusets book --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

clean:
	rm -rf _build runs

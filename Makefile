# Two entry points (see README): `make book` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV   ?= .venv
PROFILE ?= cpu
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test test-all lint venv clean browser sync-notebooks

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (log: $(VENV)/install.log) ..."
	@$(BIN)/python -m pip install --quiet --upgrade pip > $(VENV)/install.log 2>&1 || { tail -40 $(VENV)/install.log; exit 1; }
	@$(BIN)/python -m pip install --quiet -e '.[test]' >> $(VENV)/install.log 2>&1 || { tail -40 $(VENV)/install.log; exit 1; }
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	$(BIN)/diffusets book --profile $(PROFILE)

# Headless Chromium for the browser test of the built book (Debian package; needs root or sudo-less apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium not installed and apt-get not usable; the browser test will be skipped"; fi; }

# ruff: lint everything (package, tests, benchmarks, chapters); format-check the Python files (pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) browser lint
	$(BIN)/python -m pytest -q

# the slow tests too (the chapters' install cell in a new virtual environment, about 2 min; a 2-step build of the gpu
# profile's chapters 00-04 on the CPU, about 4 min)
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

# After changing _config.yml's repository.url: rewrite every chapter's first (install) cell with the new address.
sync-notebooks: $(STAMP)
	$(BIN)/python -c "from diffusets_core.publish import sync_setup_cells; print(*sync_setup_cells(), sep='\\n')"

clean:
	rm -rf _build runs

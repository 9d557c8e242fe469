# Haven: `make run` serves the app with demo data; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
FLASK := $(BIN)/flask --app wsgi
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint install system-deps browser-deps translations messages bench clean

run: install system-deps translations
	$(FLASK) init-dev
	@echo "Haven is at http://127.0.0.1:5000 (demo accounts: see README.md)"
	$(FLASK) run --host 127.0.0.1 --port 5000

test: install system-deps browser-deps translations
	@echo "== ruff =="
	$(BIN)/ruff check .
	@echo "== pytest on SQLite =="
	HAVEN_TEST_DB=sqlite $(BIN)/pytest -m "not browser"
	@echo "== pytest on PostgreSQL =="
	HAVEN_TEST_DB=postgresql $(BIN)/pytest -m "not browser"
	@echo "== browser tests (Debian chromium, headless) =="
	HAVEN_TEST_DB=sqlite $(BIN)/pytest -m browser

lint: install
	$(BIN)/ruff check .

install: $(INSTALLED)

$(INSTALLED): requirements.lock
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { bash scripts/system-deps.sh --venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@touch $(INSTALLED)

system-deps:
	@bash scripts/system-deps.sh

browser-deps:
	@bash scripts/system-deps.sh --browser

translations: install
	$(BIN)/pybabel compile -d translations

# Re-extract strings and update the catalogs after changing marked strings.
# -q belongs to pybabel, not to its subcommands. --ignore-dirs replaces babel's default,
# which skips every directory starting with "_" (templates/_macros). See docs/translating.md.
messages: install
	$(BIN)/pybabel -q extract -F babel.cfg -k _l -k lazy_gettext -k ngettext:1,2 -k lazy_ngettext:1,2 \
		-k pgettext:1c,2 -k lazy_pgettext:1c,2 \
		--ignore-dirs ".* __pycache__" \
		--project Haven --version 0.1.0 --copyright-holder "the Haven project" \
		-o translations/messages.pot .
	$(BIN)/pybabel -q update -i translations/messages.pot -d translations \
		--no-fuzzy-matching --ignore-obsolete

bench: install system-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The README's contract: `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
HOST ?= 127.0.0.1
# English is the source language; its text lives in the code and templates.
LOCALES := zh nl
CATALOGS := $(foreach l,$(LOCALES),translations/$(l)/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGS:.po=.mo)
STAMP := $(VENV)/.installed

.PHONY: run test lint setup system-deps translations compile-translations bench dist wheel-check clean

setup: $(STAMP) $(COMPILED)

# Debian packages the portal needs at run and test time; installed only when missing.
# chromium: the browser tests (Playwright drives Debian's build); fonts-noto-cjk and fonts-noto-core:
# Chinese, Latin and Greek text in pages, screenshots and PDF receipts; fonts-noto-cjk-extra: the
# Bold weight of Chinese (the receipt's title, headings and total); libpango-1.0-0,
# libpangoft2-1.0-0: WeasyPrint's text layout; libharfbuzz-subset0: WeasyPrint's fast font
# subsetting (without it a Chinese receipt takes seconds); poppler-utils: pdftoppm, to look at
# receipts in the tests; wrk: the load generator of the page benchmark; spamassassin: the test that
# scores every email as sent with Debian's rules (local tests only, no network) and fails above 1.0.
SYSTEM_PACKAGES := chromium fonts-noto-cjk fonts-noto-cjk-extra fonts-noto-core libpango-1.0-0 libpangoft2-1.0-0 \
	libharfbuzz-subset0 poppler-utils wrk spamassassin
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	  $$SUDO fc-cache -f; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

translations/%/LC_MESSAGES/messages.mo: translations/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile -d translations -l $* --statistics

compile-translations: $(COMPILED)

# Extract every marked string (pages, emails in .html and .txt, Python), merge into each
# catalog, then compile. New strings arrive untranslated; the catalog test fails until they are done.
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k Nn_:1,2 -k _l -k lazy_gettext --no-location --sort-output --width=120 \
	  --project=refund-portal -o translations/messages.pot .
	for l in $(LOCALES); do \
	  if [ -f translations/$$l/LC_MESSAGES/messages.po ]; then \
	    $(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete --width=120 -i translations/messages.pot -d translations -l $$l; \
	  else \
	    $(BIN)/pybabel init -i translations/messages.pot -d translations -l $$l; \
	  fi; \
	done
	$(BIN)/pybabel compile -d translations --statistics

# Links in emails and the printed addresses follow the port served, unless PORTAL_BASE_URL says otherwise.
run: export PORTAL_BASE_URL ?= http://$(HOST):$(PORT)
run: setup system-deps
	$(BIN)/portal db upgrade
	$(BIN)/portal demo
	@# The outbox worker runs beside the web server and stops with it.
	$(BIN)/portal outbox send --watch & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/portal run --host $(HOST) --port $(PORT)

test: setup system-deps
	$(BIN)/python -m pytest

# The tools that keep the layout so (configured in pyproject.toml): lint and format, types (strict
# on the domain packages), import contracts. `ruff check --fix` and `ruff format` repair most findings.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Every bench script prints its figures; files starting with _ are helpers they start.
bench: setup system-deps
	for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# The wheel and the sdist in dist/: templates, emails, static files, the policy, the migrations and
# the catalogs (compiled by the build step in setup.py) inside the package.
dist: $(STAMP)
	rm -rf build dist
	$(BIN)/python -m build --outdir dist .

# Install the wheel into a fresh virtualenv outside the tree and serve it with gunicorn (.ci/wheel-check).
wheel-check: $(STAMP)
	.ci/wheel-check

clean:
	rm -rf $(VENV) instance .pytest_cache test-artifacts build dist .mypy_cache .ruff_cache .grimp_cache .import_linter_cache
	find translations -name '*.mo' -delete

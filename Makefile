# opsportal. `make run` starts the portal; `make test` runs the suite. See README.md.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
# The test suite runs in production mode (DEBUG off), which requires these two.
TEST_ENV := SECRET_KEY=test-only-not-secret ALLOWED_HOSTS=localhost,127.0.0.1,testserver \
	SECURE_SSL_REDIRECT=false OPSPORTAL_VAR_DIR=$(CURDIR)/var/test

.PHONY: run run-pg test lint fmt bench install demo clean

$(VENV_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e ".[dev]"
	touch $(VENV_STAMP)

install: $(VENV_STAMP)

run: $(VENV_STAMP)
	@mkdir -p var
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --noinput
	DEBUG=$${DEBUG:-true} $(PY) manage.py seed_demo
	DEBUG=$${DEBUG:-true} scripts/run.sh

# The same, on the local PostgreSQL and Redis, with the owner/app role split.
run-pg: $(VENV_STAMP)
	scripts/pg_setup.sh opsportal
	DATABASE_URL=postgresql://opsportal_app@127.0.0.1:5432/opsportal \
	DATABASE_MIGRATE_URL=postgresql://opsportal_owner@127.0.0.1:5432/opsportal \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} $(MAKE) run

# Byte-compile first: with PYTHONDONTWRITEBYTECODE set (as on CI machines) every subprocess the
# suite starts (workers, gunicorn, manage.py children) would compile the project again.
test: $(VENV_STAMP)
	@mkdir -p var/test/staticfiles
	@$(PY) -m compileall -q apps opsportal tests > /dev/null
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV_STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	$(TEST_ENV) $(PY) manage.py makemigrations --check --dry-run

fmt: $(VENV_STAMP)
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bench: $(VENV_STAMP)
	@mkdir -p var/test bench/results
	for b in bench/[!_]*.py; do $(TEST_ENV) $(PY) $$b || exit 1; done

clean:
	rm -rf var .venv

# pwcflow: `make demo` installs everything and trains on the built-in synthetic set;
# `make test` runs the test suite on both legs (Python 3.11 + TF 2.x, Python 3.7 + TF 1.15.5).
PY311 ?= $(shell command -v python3.11 || command -v python3)
PY37  ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.7*/bin/python3.7) $(shell command -v python3.7))

# What CI installs is pinned per leg by constraints/py311.txt and constraints/py37.txt (`make lock` refreshes them
# from working venvs: `make lock VENV=path/.venv VENV37=path/.venv37`).
VENV ?= .venv
VENV37 ?= .venv37
C311 := constraints/py311.txt
C37  := constraints/py37.txt
# Tests run in parallel processes (pytest-xdist): one per core, at most 4 (each holds a TensorFlow); PYTEST_WORKERS=
# (empty) runs them in one process.
PYTEST_WORKERS ?= -n auto --maxprocesses 4

.PHONY: install install37 tools demo test test311 test37 lint lock wheel wheel-check

install: .venv/.stamp
.venv/.stamp: pyproject.toml $(C311)
	$(PY311) -m venv .venv
	.venv/bin/pip install -q -U pip
	.venv/bin/pip install -q -e ".[cpu,dev]" -c $(C311)
	touch $@

# A leg that cannot run is reported loudly; with STRICT=1 (.ci/run sets it; CI=true implies it) it fails the build.
STRICT ?= $(if $(filter true 1,$(CI)),1,)
LEG37_MISSING = echo "**** TF 1.15 leg NOT RUN: no Python 3.7 on this machine (only the TF 2.x leg was tested) ****" >&2; \
	if [ -n "$(STRICT)" ]; then echo "**** STRICT=1 / CI: both legs must run: failing ****" >&2; exit 1; fi

install37: .venv37/.stamp
.venv37/.stamp: pyproject.toml $(C37)
	@if [ -z "$(PY37)" ]; then $(LEG37_MISSING); exit 0; fi; \
	$(PY37) -m venv .venv37 && .venv37/bin/pip install -q -U pip && \
	.venv37/bin/pip install -q -e ".[tf1,dev]" -c $(C37) && touch $@

# Test tools outside PyPI: npm's s3rver (a file-backed S3-compatible server) for the OBS storage tests.
# Idempotent; without npm the storage tests fall back to moto_server and skip the server-restart test.
S3RVER := .tools/s3rver/node_modules/.bin/s3rver
tools: $(S3RVER)
$(S3RVER):
	@mkdir -p .tools && printf '*\n' > .tools/.gitignore
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix .tools/s3rver --no-save --no-audit --no-fund --loglevel=error s3rver@3.7.1 \
	  || echo "WARNING: npm install s3rver failed: the OBS restart test will be skipped"; \
	else echo "WARNING: npm not found: the OBS storage tests use moto_server and skip the restart test"; fi

demo: install
	.venv/bin/python -m pwcflow.train experiment=demo

test: test311 test37

test311: install tools
	.venv/bin/ruff check pwcflow tests benchmarks
	.venv/bin/python -m pytest -q $(PYTEST_WORKERS)

test37: install37 tools
	@if [ ! -x .venv37/bin/python ]; then $(LEG37_MISSING); \
	else .venv37/bin/python -m pytest -q $(PYTEST_WORKERS); fi

# Pin every installed distribution of the working venvs (pwcflow itself, pip, setuptools and wheel excluded).
lock:
	@mkdir -p constraints
	@printf '# make lock: pins for the Python 3.11 + TF 2.x leg (from %s)\n' "$$($(VENV)/bin/python -V 2>&1)" > $(C311)
	$(VENV)/bin/pip freeze --exclude-editable | grep -iv '^pwcflow[=@ ]' >> $(C311)
	@if [ -x $(VENV37)/bin/pip ]; then \
	  printf '# make lock: pins for the Python 3.7 + TF 1.15.5 leg (from %s)\n' "$$($(VENV37)/bin/python -V 2>&1)" > $(C37); \
	  $(VENV37)/bin/pip freeze --exclude-editable | grep -iv '^pwcflow[=@ ]' >> $(C37); \
	else echo "no $(VENV37): $(C37) left as it is"; fi

# The installable package: dist/pwcflow-*.whl (configs, presets and the tfoptflow reference inside).
wheel: install
	rm -rf dist build
	.venv/bin/python -m pip wheel . --no-deps -q -w dist
	rm -rf build

# The wheel as a user installs it: a fresh venv, pinned dependencies, predict and a short train from a temp folder.
wheel-check: wheel
	PY311="$(PY311)" C311="$(C311)" .ci/wheel_check

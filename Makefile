# pwcflow: `make demo` installs everything and trains on the built-in synthetic set;
# `make test` runs the test suite on both legs (Python 3.11 + TF 2.x, Python 3.7 + TF 1.15.5).
PY311 ?= $(shell command -v python3.11 || command -v python3)
PY37  ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.7*/bin/python3.7) $(shell command -v python3.7))

.PHONY: install install37 tools demo test test311 test37 lint

install: .venv/.stamp
.venv/.stamp: pyproject.toml
	$(PY311) -m venv .venv
	.venv/bin/pip install -q -U pip
	.venv/bin/pip install -q -e ".[cpu,dev]"
	touch $@

install37: .venv37/.stamp
.venv37/.stamp: pyproject.toml
	@if [ -z "$(PY37)" ]; then echo "no Python 3.7 found: skipping the TF 1.15 leg"; exit 0; fi; \
	$(PY37) -m venv .venv37 && .venv37/bin/pip install -q -U pip && \
	.venv37/bin/pip install -q -e ".[tf1,dev]" && touch $@

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
	.venv/bin/python -m pytest -q

test37: install37 tools
	@if [ ! -x .venv37/bin/python ]; then echo "TF 1.15 leg SKIPPED: no Python 3.7 on this machine"; \
	else .venv37/bin/python -m pytest -q; fi

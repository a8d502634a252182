# govgw: `make run` sets up and serves the demo; `make test` runs the whole suite.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
PROTOS := $(wildcard proto/govgw/v1/*.proto)
GEN_STAMP := gen/.stamp
DATA_DIR ?= .govgw
LISTEN ?= 127.0.0.1:50051

.PHONY: install gen run test lint bench clean redis browser postgres systemd

install: $(VENV_STAMP) $(GEN_STAMP)

$(VENV_STAMP): pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	@# The generated protobuf modules live in gen/ (not committed); put it on the path.
	echo "$(CURDIR)/gen" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/govgw-gen.pth
	touch $@

$(GEN_STAMP): $(PROTOS) $(VENV_STAMP)
	rm -rf gen && mkdir -p gen
	$(PY) -m grpc_tools.protoc -Iproto --python_out=gen --pyi_out=gen --grpc_python_out=gen $(PROTOS)
	touch $@

gen: $(GEN_STAMP)

redis:
	@command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# The storage tests run a real PostgreSQL (tests/pg_server.py: initdb + pg_ctl as `postgres`).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# tests/storage/test_deploy.py checks deploy/systemd with `systemd-analyze verify`.
systemd:
	@command -v systemd-analyze >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; }

# The counter page's tests drive Debian's chromium headless (Playwright, no browser download),
# with a CJK font so that their screenshots read.
browser:
	@test -x /usr/bin/chromium && fc-list :lang=zh | grep -q . || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; }

lint: install
	.venv/bin/ruff check .
	.venv/bin/buf lint proto
	.venv/bin/lint-imports

run: install
	.venv/bin/govgw demo --data-dir $(DATA_DIR) --listen $(LISTEN)

test: install redis postgres browser systemd
	.venv/bin/ruff check .
	.venv/bin/buf lint proto
	@# The architecture: the contracts in pyproject.toml [tool.importlinter].
	.venv/bin/lint-imports
	@# Two processes (pytest-xdist), a test file's tests in one of them (module fixtures are
	@# built once): most tests wait on subprocesses, fsync or sockets, so two cores overlap.
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

bench: install redis
	$(PY) -m bench.run
	$(PY) -m bench.workers
	$(PY) -m bench.masking --out bench/results/masking.json

# The pool at a million persons on SQLite and on PostgreSQL (import rows/s, VerifyIdentity
# and Lookup side by side with the echo server): about half an hour on two cores, so apart.
.PHONY: bench-scale
bench-scale: install postgres
	$(PY) -m bench.scale --persons 1000000 --backend sqlite,postgresql

clean:
	rm -rf gen .venv .pytest_cache .ruff_cache .hypothesis .import_linter_cache

.PHONY: fuzz
# The descriptor-driven fuzz test at full size: 100,000 hostile requests over every route.
fuzz: install
	GOVGW_FUZZ_CASES=$${GOVGW_FUZZ_CASES:-100000} $(PY) -m pytest -q -p no:cacheprovider -s tests/integration/test_fuzz.py

.PHONY: eval-masking
# Precision and recall of free-text PII detection per entity type on the
# labelled corpus (masking/text/evaluation.py), and person names' recall per form
# (masking/text/name_forms.py); fails if a target is missed.
eval-masking: install
	$(PY) -m masking.text.evaluation
	$(PY) -m masking.text.name_forms

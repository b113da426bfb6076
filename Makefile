# The two commands of the README:
#   make serve   start a server on 127.0.0.1:50051 with its data in ./taskq-data (needs only Python)
#   make test    install everything the tests need, then run all of them (what CI runs)
# Everything is installed into .venv (Python) and node_modules (buf) inside this checkout;
# `make serve` installs only .venv.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf

.PHONY: serve test install lint python-lint postgres-installed nginx-installed chromium-installed console-screenshots proto-lint proto-breaking proto-baseline generate check-generated pytest test-go test-node test-java test-cloudtasks test-grpcurl test-crosslang test-package bench bench-quick clean

serve: $(VENV)/.installed
	$(VENV)/bin/taskq serve $(ARGS)

test: install check-generated python-lint proto-lint proto-breaking pytest test-package test-go test-node test-java test-cloudtasks test-grpcurl test-crosslang bench-quick

install: $(VENV)/.installed node_modules/.installed clients/node/node_modules/.installed

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e clients/python -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clients/node/node_modules/.installed: clients/node/package.json clients/node/package-lock.json
	cd clients/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The tests start throwaway PostgreSQL clusters of their own; this only makes sure the binaries
# are there (Debian's postgresql package, installed when missing).
postgres-installed:
	bash tools/install-postgres.sh

# nginx for the proxy tests (tests/deploy): Debian's binary unpacked into the virtualenv, never
# installed as a service.
nginx-installed: $(VENV)/nginx/usr/sbin/nginx

$(VENV)/nginx/usr/sbin/nginx: tools/install-nginx.sh
	bash tools/install-nginx.sh $(VENV)/nginx

# Chromium for the console's browser tests (tests/console), driven by Playwright through its
# executable path: Debian's chromium package, installed when missing (no browser downloads).
chromium-installed:
	bash tools/install-chromium.sh

# The console's screenshots in docs/console (shown in the README), taken by its browser tests.
console-screenshots: $(VENV)/.installed chromium-installed
	TASKQ_SCREENSHOTS=1 TASKQ_REQUIRE_BROWSER=1 $(PY) -m pytest tests/console

pytest: install postgres-installed nginx-installed chromium-installed
	TASKQ_REQUIRE_POSTGRES=1 TASKQ_REQUIRE_PROXY=1 TASKQ_REQUIRE_BROWSER=1 $(PY) -m pytest $(PYTEST_ARGS)

# Ruff (lint and import order) and mypy (types), configured in pyproject.toml.
python-lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Each client's tests start the real server themselves, from this checkout's virtualenv.
export TASKQ_BIN := $(abspath $(VENV)/bin/taskq)

test-go: $(VENV)/.installed
	cd clients/go && go test -count=1 ./...

test-node: install
	cd clients/node && npm test

# The Dockerfile's steps without a Docker engine: wheels -> clean virtualenv -> serve, health.
test-package: $(VENV)/.installed
	bash tests/packaging/check.sh

# grpcurl 1.9.3 (installed into .tools/bin from the Go module proxy) against a fresh server,
# through reflection: list, describe, unary calls and a StreamTasks stream.
test-grpcurl: $(VENV)/.installed
	bash tests/grpcurl/check.sh

# A task created in Go, leased from TypeScript, acknowledged from Java (needs the Node and
# Java builds, which test-node and test-java make).
test-crosslang: $(VENV)/.installed clients/node/node_modules/.installed
	bash tests/crosslang/check.sh

test-java: $(VENV)/.installed third_party/.extracted
	cd clients/java && mvn --batch-mode --quiet test

# Google's own Cloud Tasks clients against a real taskq, each configured as an emulator user
# would (plaintext, no credentials, taskq's address): @google-cloud/tasks from npm,
# cloud.google.com/go/cloudtasks from the Go module proxy, google-cloud-tasks from Maven Central.
# Each is a project of its own under tests/cloudtasks/ and starts its own server from $(TASKQ_BIN)
# and a loopback HTTP server in its language that receives the tasks.
test-cloudtasks: $(VENV)/.installed tests/cloudtasks/node/node_modules/.installed
	cd tests/cloudtasks/node && npm test
	cd tests/cloudtasks/go && go test -count=1 ./...
	cd tests/cloudtasks/java && mvn --batch-mode --quiet test

tests/cloudtasks/node/node_modules/.installed: tests/cloudtasks/node/package.json tests/cloudtasks/node/package-lock.json
	cd tests/cloudtasks/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# google/rpc protos the API imports, taken from the installed googleapis-common-protos package
# (never committed), for buf and the Java build.
third_party/.extracted: $(VENV)/.installed tools/google-protos.py
	$(PY) tools/google-protos.py third_party
	touch $@

proto-lint: node_modules/.installed third_party/.extracted
	$(BUF) lint
	$(BUF) format --diff --exit-code

# Breaking changes (FILE rules) against the API baseline: the protos as last released, kept
# in proto/baseline/. Replace it only on purpose with `make proto-baseline`. On a branch other
# than main, changes are also checked against main.
proto-breaking: node_modules/.installed third_party/.extracted
	$(BUF) breaking proto --against proto/baseline/taskq-v1.binpb
	@if [ "$$(git rev-parse --abbrev-ref HEAD 2>/dev/null)" != main ] && git rev-parse --verify --quiet main >/dev/null; then \
		$(BUF) breaking --against '.git#branch=main'; fi

proto-baseline: node_modules/.installed third_party/.extracted
	$(BUF) build proto -o proto/baseline/taskq-v1.binpb

# Regenerates every committed generated file (API stubs via buf.gen.yaml, storage records).
generate: install third_party/.extracted
	$(BUF) generate
	$(PY) -m grpc_tools.protoc -Iserver/taskq/store --python_out=server/taskq/store/gen --pyi_out=server/taskq/store/gen server/taskq/store/records.proto

# CI: generated code must be what the protos produce.
check-generated: generate
	@changes=$$(git status --porcelain -- clients/python/gen server/taskq/store/gen clients/go/gen clients/node/src/gen); \
	if [ -n "$$changes" ]; then echo "generated code is stale; run 'make generate' and commit:"; echo "$$changes"; exit 1; fi

# Benchmarks against beanstalkd and NATS JetStream (bench/README.md). The peers come from
# Debian's packages (installed with apt-get when missing); their Python clients from the bench extra.
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $@

bench: $(VENV)/.bench-installed
	$(PY) -m bench $(BENCH_ARGS)

# Every scenario and peer at tiny scale (under 2 minutes): keeps the harness working; asserts no speed.
bench-quick: $(VENV)/.bench-installed
	$(PY) -m bench --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules clients/node/node_modules tests/cloudtasks/node/node_modules third_party

# pgsse: the two commands a newcomer needs are `make run` and `make test`.
#
# When DATABASE_URL is unset, `make run` and `make psql` use a private PostgreSQL cluster kept in
# .pgsse/ (ignored by git), listening on 127.0.0.1:$(PGPORT) only. Running them again reuses it.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PGPORT ?= 54329
PGDB ?= pgsse
CLUSTER_DIR := $(CURDIR)/.pgsse
PGDATA := $(CLUSTER_DIR)/data
LOCAL_DATABASE_URL := postgres://postgres@127.0.0.1:$(PGPORT)/$(PGDB)

# PostgreSQL's server programs: on PATH, or the newest under /usr/lib/postgresql/*/bin (Debian).
PG_BIN = $(shell d=$$(dirname "$$(command -v initdb 2>/dev/null)" 2>/dev/null); \
	if [ -n "$$d" ] && [ -x "$$d/pg_ctl" ]; then echo "$$d"; \
	else ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; fi)

# initdb and postgres refuse to run as root; as root they run as the `postgres` user.
AS_PG = $(if $(filter 0,$(shell id -u)),runuser -u postgres --,)

.PHONY: help run build test bench bench-run bench-compare lint psql db db-stop postgres-installed browser-installed nginx-installed clean-db

help:
	@echo "make run       start the gateway (and a private PostgreSQL if DATABASE_URL is unset)"
	@echo "make test      run every test (starts its own throwaway PostgreSQL)"
	@echo "make psql      psql on the gateway's database; pipe SQL into it or type it"
	@echo "make db-stop   stop the private PostgreSQL"
	@echo "make lint      cargo fmt --check and clippy"
	@echo "make bench     load-test a release gateway and print the figures"
	@echo "make bench-compare BASE=<commit>   the same, alternating that commit's gateway and this one"

# With DEMO_SCHEMA set, psql finds the demo's tables where the gateway put them.
PSQL_OPTIONS = $(PGOPTIONS)$(if $(DEMO_SCHEMA), -c search_path=$(DEMO_SCHEMA))

ifdef DATABASE_URL
run:
	@[ -x target/debug/pgsse ] || echo "make run: the first build compiles about 250 crates: several minutes on 2 cores, longer when they are busy"
	cargo run -- $(ARGS)

psql:
	@PGOPTIONS="$(PSQL_OPTIONS)" psql "$(DATABASE_URL)"
else
run: db
	@[ -x target/debug/pgsse ] || echo "make run: the first build compiles about 250 crates: several minutes on 2 cores, longer when they are busy"
	DATABASE_URL="$(LOCAL_DATABASE_URL)" cargo run -- $(ARGS)

psql: db
	@PGOPTIONS="$(PSQL_OPTIONS)" psql "$(LOCAL_DATABASE_URL)"
endif

build:
	cargo build

# The workspace is the gateway and its load generator, pgsse-bench (bench/); `build` and `run`
# act on the gateway only.
test: postgres-installed browser-installed nginx-installed
	cargo test --workspace --all-targets -- --test-threads 4

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# The benchmark runs a release gateway on its own port against the database $(BENCH_DB) of the
# private cluster, dropped and created anew on every run (DATABASE_URL is not used: the run drops
# its database). BENCH_ARGS go to pgsse-bench (bench/; `target/release/pgsse-bench --help`), e.g.
# BENCH_ARGS="--cases 1000x100 --seconds 30". The gateway gets the hard open-file limit, a
# broadcast buffer of BENCH_BROADCAST events and room for BENCH_MAX_STREAMS streams (over HTTP/2
# they need no connection each); its log goes to target/bench/gateway.log.
BENCH_PORT ?= 8090
BENCH_DB ?= pgsse_bench
BENCH_BROADCAST ?= 16384
BENCH_MAX_STREAMS ?= 100000
BENCH_ARGS ?=
BENCH_URL = postgres://postgres@127.0.0.1:$(PGPORT)/$(BENCH_DB)

bench: db
	cargo build --release --workspace --bins
	@$(MAKE) --no-print-directory bench-run

# One run of pgsse-bench against the gateway binary BENCH_GATEWAY; results in
# target/bench/$(BENCH_LABEL).json.
BENCH_GATEWAY ?= target/release/pgsse
BENCH_LABEL ?= results

bench-run:
	@mkdir -p target/bench
	@admin="postgres://postgres@127.0.0.1:$(PGPORT)/postgres"; \
	psql "$$admin" -qc "drop database if exists $(BENCH_DB) with (force)"; \
	psql "$$admin" -qc "create database $(BENCH_DB)"; \
	ulimit -n "$$(ulimit -Hn)"; \
	DATABASE_URL="$(BENCH_URL)" BIND_ADDR="127.0.0.1:$(BENCH_PORT)" \
		BROADCAST_CAPACITY="$(BENCH_BROADCAST)" MAX_STREAMS="$(BENCH_MAX_STREAMS)" \
		RUST_LOG="$${RUST_LOG:-warn}" $(BENCH_GATEWAY) >target/bench/gateway.log 2>&1 & gateway=$$!; \
	trap 'kill $$gateway 2>/dev/null; wait $$gateway 2>/dev/null || true' EXIT; \
	target/release/pgsse-bench --gateway "127.0.0.1:$(BENCH_PORT)" --database-url "$(BENCH_URL)" \
		--gateway-pid "$$gateway" --json "target/bench/$(BENCH_LABEL).json" $(BENCH_ARGS)

# Compares the gateway at commit BASE with the working tree's. Whole runs on a shared machine
# differ more than most changes do, so the two take turns: base, current, base, current, each
# against a fresh database and with the working tree's load generator. BASE is built from
# `git archive` under target/bench/base (the first build takes minutes): only its gateway, so a
# BASE from before the workspace (its load generator in src/bin/) builds as well as a later one;
# the workspace excludes target/, so that checkout is a package of its own. BENCH_ARGS as for
# bench; by default the three load cases that show latency. A run that fails does not stop the
# others; the target fails at the end.
BASE ?= HEAD
COMPARE_ARGS ?= --cases 1x500,1000x100,10000x10

bench-compare: db
	cargo build --release --workspace --bins
	rm -rf target/bench/base-src && mkdir -p target/bench/base-src
	git archive "$(BASE)" | tar -x -C target/bench/base-src
	cd target/bench/base-src && \
		CARGO_TARGET_DIR="$(CURDIR)/target/bench/base-target" cargo build --release --bin pgsse
	@failed=0; for run in 1 2; do \
		echo "== base ($(BASE)), run $$run"; \
		$(MAKE) --no-print-directory bench-run BENCH_GATEWAY=target/bench/base-target/release/pgsse \
			BENCH_LABEL=base-$$run BENCH_ARGS="$(or $(BENCH_ARGS),$(COMPARE_ARGS))" || failed=1; \
		echo "== working tree, run $$run"; \
		$(MAKE) --no-print-directory bench-run BENCH_LABEL=current-$$run \
			BENCH_ARGS="$(or $(BENCH_ARGS),$(COMPARE_ARGS))" || failed=1; \
	done; \
	if [ "$$failed" = 1 ]; then echo "pgsse: a run failed or lost deliveries (see above)"; exit 1; fi

# Starts (creating on first use) the private cluster and its database.
db: postgres-installed
	@bin="$(PG_BIN)"; \
	if [ ! -f "$(PGDATA)/PG_VERSION" ]; then \
		echo "pgsse: creating a private PostgreSQL cluster in .pgsse/"; \
		mkdir -p "$(CLUSTER_DIR)"; \
		if [ "$$(id -u)" = 0 ]; then chown postgres "$(CLUSTER_DIR)"; fi; \
		if ! $(AS_PG) test -w "$(CLUSTER_DIR)"; then \
			echo "pgsse: the postgres user cannot write $(CLUSTER_DIR); move the checkout somewhere it can reach, or set DATABASE_URL" >&2; \
			exit 1; \
		fi; \
		$(AS_PG) "$$bin/initdb" -D "$(PGDATA)" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$(CLUSTER_DIR)/initdb.log"; \
	fi; \
	if ! $(AS_PG) "$$bin/pg_ctl" -D "$(PGDATA)" status >/dev/null 2>&1; then \
		echo "pgsse: starting PostgreSQL on 127.0.0.1:$(PGPORT)"; \
		$(AS_PG) "$$bin/pg_ctl" -D "$(PGDATA)" -w -l "$(CLUSTER_DIR)/postgres.log" \
			-o "-c listen_addresses=127.0.0.1 -c port=$(PGPORT) -c unix_socket_directories=''" start >/dev/null; \
	fi; \
	psql "postgres://postgres@127.0.0.1:$(PGPORT)/postgres" -qAtc "select 1 from pg_database where datname = '$(PGDB)'" | grep -q 1 \
		|| psql "postgres://postgres@127.0.0.1:$(PGPORT)/postgres" -qc "create database $(PGDB)"

db-stop:
	@if [ -f "$(PGDATA)/PG_VERSION" ]; then $(AS_PG) "$(PG_BIN)/pg_ctl" -D "$(PGDATA)" -m fast stop || true; fi

# Removes the private cluster and all its data.
clean-db: db-stop
	rm -rf "$(CLUSTER_DIR)"

# PostgreSQL's server and psql: installed from the distribution when missing and possible.
postgres-installed:
	@if [ -z "$(PG_BIN)" ] || ! command -v psql >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "pgsse: installing PostgreSQL (apt-get install postgresql)"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null \
				|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }; \
		else \
			echo "pgsse: PostgreSQL is not installed. Install the server and client (Debian/Ubuntu: sudo apt-get install postgresql; macOS: brew install postgresql) or set DATABASE_URL." >&2; \
			exit 1; \
		fi; \
	fi

# Headless Chromium and chromedriver for the browser tests, from the distribution's packages
# (Debian: chromium, chromium-driver). Nothing downloads a browser at run time.
browser-installed:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "pgsse: installing Chromium and chromedriver (apt-get install chromium chromium-driver)"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
				|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }; \
		else \
			echo "pgsse: the browser tests need chromium and chromedriver (Debian/Ubuntu: sudo apt-get install chromium chromium-driver)" >&2; \
			exit 1; \
		fi; \
	fi

# Debian's nginx for the tests of the reverse-proxy recipe (deploy/nginx.conf); the tests run
# their own instances on free loopback ports. Installing it may start the distribution's own
# nginx on port 80 where services start on install; the tests do not use that one.
nginx-installed:
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "pgsse: installing nginx (apt-get install nginx)"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null \
				|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null; }; \
		else \
			echo "pgsse: the nginx tests need nginx (Debian/Ubuntu: sudo apt-get install nginx)" >&2; \
			exit 1; \
		fi; \
	fi

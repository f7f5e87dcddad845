# MedLedger developer entry points. Build outputs and installed tools live outside the clone, in
# $(MEDLEDGER_CACHE), so repeated runs are incremental and the tree stays clean.

export MEDLEDGER_CACHE ?= $(HOME)/.cache/medledger
export CARGO_TARGET_DIR ?= $(MEDLEDGER_CACHE)/target
DATA_DIR ?= .medledger
LISTEN ?= 127.0.0.1:8080

.PHONY: dev services-up services-down test test-rust test-contracts test-deploy lint fmt bench tools contracts help

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

dev: ## run every service in one process on embedded backends (data in $(DATA_DIR))
	cargo run -q --locked -p medledger -- dev --data-dir $(DATA_DIR) --listen $(LISTEN)

services-up: ## run the distributed stack on this machine (PostgreSQL, Kafka protocol, IPFS, two anvils, five processes)
	scripts/services-up up

services-down: ## stop what `make services-up` started
	scripts/services-up down

test: tools test-rust test-contracts test-deploy ## run every test: Rust (unit, e2e), Solidity (forge), deploy checks

tools: ## install forge, anvil and solc into $(MEDLEDGER_CACHE)/tools
	@scripts/install-tools >/dev/null

test-rust:
	scripts/ensure-postgres
	. $(MEDLEDGER_CACHE)/tools/env.sh && cargo test --workspace --locked

test-contracts:
	scripts/check-contracts

test-deploy:
	scripts/check-deploy

lint: ## formatting and clippy with warnings denied
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt: ## format the code
	cargo fmt --all

contracts: tools ## rebuild the committed contract artifacts from contracts/src
	scripts/build-contracts

bench: ## benchmarks: criterion (parse+encrypt+hash, consent decision, proof check) and the load-test driver against medledger dev (FHIR ingest, reads, MLLP, single creates, search)
	cargo bench -p medledger-ingest --bench write_path
	cargo bench -p medledger-consent --bench check_access
	cargo bench -p medledger-ledger --bench verify
	scripts/bench-ingest
	scripts/bench-read
	scripts/bench-mllp
	scripts/bench-create
	scripts/bench-search
	scripts/bench-distributed

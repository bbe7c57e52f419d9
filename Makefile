# zkherd: the two commands a fresh machine needs are `make demo` and `make test`;
# both install what they need on first use (scripts/bootstrap.sh).
SHELL := /bin/bash
export LANG := C.UTF-8
export LC_ALL := C.UTF-8
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: help bootstrap test lint units sanity integration molecule matrix chaos demo demo-stop bench docs changelog clean

help:
	@echo "make demo         boot three systemd boxes, deploy ZooKeeper and zkherd services with the roles, show them work"
	@echo "make demo-stop    power the demo boxes off"
	@echo "make test         everything CI runs: ruff, ansible-lint, ansible-test sanity+units, integration tests, molecule"
	@echo "make chaos        a long chaos run: faults against everything, invariants checked (SEED=n DURATION=s"
	@echo "                  PROFILE=quick|wide; default: a seed from the clock, 600 s, wide); report in .cache/chaos/"
	@echo "make bench        benchmarks; tables go to docs/benchmarks.md"
	@echo "make docs         regenerate docs/plugins/ from the plugins' own documentation"
	@echo "make changelog    regenerate CHANGELOG.md from changelogs/fragments/ (antsibull-changelog)"
	@echo "  (parts of make test: lint, sanity, units, integration, molecule, matrix)"

bootstrap:
	@scripts/bootstrap.sh

test: bootstrap
	@scripts/test.sh

lint: bootstrap
	@scripts/test.sh lint

sanity: bootstrap
	@scripts/ansible-test.sh sanity

units: bootstrap
	@scripts/ansible-test.sh units

integration: bootstrap
	@scripts/test.sh integration

molecule: bootstrap
	@scripts/test.sh molecule

matrix: bootstrap
	@scripts/test.sh matrix

# `make chaos SEED=7 DURATION=600`: the same seed and duration replay the same fault schedule.
# PROFILE=quick|wide (docs/reliability.md): the services per group and the outages' length.
SEED ?=
DURATION ?= 600
PROFILE ?= wide
chaos: bootstrap
	@seed=$(SEED); seed=$${seed:-$$(( $$(date +%s) % 100000 ))}; mkdir -p .cache/chaos; \
	$(BIN)/python -m tests.chaos --seed $$seed --duration $(DURATION) --profile $(PROFILE) \
		--report .cache/chaos/$(PROFILE)-seed-$$seed.json

demo: bootstrap
	@scripts/demo.sh

demo-stop: bootstrap
	@$(BIN)/python -m tests.support.boxes down --state .cache/demo-boxes

bench: bootstrap
	@scripts/bench.sh

docs: bootstrap
	@$(BIN)/python scripts/plugin_docs.py

changelog: bootstrap
	@scripts/changelog.sh

clean:
	rm -rf .cache .venv tests/output .pytest_cache .ruff_cache

# wlcg.soc developer entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BUILD ?= build
COLLECTIONS := $(abspath $(BUILD))/collections
BIN := $(abspath $(VENV))/bin
VERSION := $(shell awk '/^version:/{print $$2}' galaxy.yml)
TARBALL := $(BUILD)/wlcg-soc-$(VERSION).tar.gz
# Molecule scenarios run side by side, each converging its hosts in parallel.
MOLECULE_JOBS ?= 2
# Each step of a stage runs through this: `make test` sums up their times at its end.
STAGE := tests/stage.sh run

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export WLCG_SOC_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_FORCE_COLOR ?= 0
export PY_COLORS ?= 0

.PHONY: help
help:  ## List the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## /{printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: requirements-dev.txt
	$(STAGE) venv -- $(PYTHON) -m venv $(VENV)
	$(STAGE) venv:pip -- $(BIN)/pip install -q --upgrade pip
	$(STAGE) venv:requirements -- $(BIN)/pip install -q -r requirements-dev.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.installed  ## Controller tooling in $(VENV)

.PHONY: deps
deps:  ## Debian packages the tests use on the controller (memcached, shellcheck)
	$(STAGE) deps -- tests/deps.sh

.PHONY: hosts
hosts:  ## Podman and the Debian 12 systemd image for test hosts (root)
	$(STAGE) hosts -- tests/hosts/setup.sh

.PHONY: build
build: venv  ## Build the collection tarball and install it under $(BUILD)/collections
	rm -rf $(BUILD) && mkdir -p $(COLLECTIONS)
	$(STAGE) build -- ansible-galaxy collection build --force --output-path $(BUILD) .
	$(STAGE) build:install -- ansible-galaxy collection install --force --offline -p $(COLLECTIONS) $(TARBALL)

.PHONY: lint
lint: venv  ## yamllint, ansible-lint (production profile), ruff, changelog fragments
	$(STAGE) lint:yamllint -- yamllint --strict .
	$(STAGE) lint:ansible-lint -- ansible-lint --profile production --strict
	$(STAGE) lint:ruff -- ruff check .
	$(STAGE) lint:ruff-format -- ruff format --check .
	$(STAGE) lint:changelog -- antsibull-changelog lint

.PHONY: sanity
sanity: venv deps  ## ansible-test sanity on the collection
	$(STAGE) sanity -- tests/sanity/run.sh

.PHONY: unit
unit: venv build deps  ## pytest unit tests (run against the built collection)
	$(STAGE) unit -- pytest -n 2 --durations=25 tests/unit

.PHONY: readmes
readmes: venv  ## Write roles/*/README.md from their meta/argument_specs.yml
	python tests/role_readme.py

.PHONY: importer
importer: venv build  ## Galaxy's import check (galaxy-importer, with ansible-lint) on the built tarball
	$(STAGE) importer -- $(SHELL) $(.SHELLFLAGS) 'cd $(BUILD) && \
	  GALAXY_IMPORTER_CONFIG=$(CURDIR)/tests/galaxy-importer.cfg \
	  GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP=$(abspath $(BUILD))/importer-tmp \
	  python -m galaxy_importer.main $(notdir $(TARBALL)) | tee importer.log'
	@# The importer passes with lint findings and other warnings; Galaxy shows them: fail on them.
	@$(STAGE) importer:findings -- $(SHELL) $(.SHELLFLAGS) '! grep -E "^(WARNING|ERROR|CRITICAL):" $(BUILD)/importer.log'

.PHONY: molecule
molecule: venv hosts build  ## Molecule: converge, idempotence, verify for every scenario
	MOLECULE_JOBS=$(MOLECULE_JOBS) $(STAGE) molecule -- tests/molecule.sh

.PHONY: test
test:  ## Everything CI runs (lint sanity unit importer molecule), then the time of each stage
	@tests/stage.sh all $(MAKE) --no-print-directory test-stages

.PHONY: test-stages
test-stages: lint sanity unit importer molecule

.PHONY: bench
bench: venv deps  ## Benchmarks (benchmarks/README.md); not part of `make test`
	python benchmarks/misp_sync.py $(BENCH_ARGS)

# The lab runs with the controller settings sites are given (pipelining, persistent SSH
# connections, cached facts), its fact cache kept with the lab's state.
LAB_ENV := ANSIBLE_CONFIG=$(CURDIR)/inventories/example-site/ansible.cfg ANSIBLE_CACHE_PLUGIN_CONNECTION=$(CURDIR)/.lab/facts

.PHONY: lab
lab: venv hosts build  ## Start the local lab and deploy the SOC into it
	$(LAB_ENV) ansible-playbook tests/lab/create.yml -i inventories/lab
	$(LAB_ENV) ansible-playbook playbooks/site.yml -i inventories/lab
	$(LAB_ENV) ansible-playbook tests/lab/traffic.yml -i inventories/lab
	$(LAB_ENV) ANSIBLE_CALLBACK_RESULT_FORMAT=yaml ansible-playbook tests/lab/summary.yml -i inventories/lab

.PHONY: lab-traffic
lab-traffic: venv  ## Export flows into the running lab again (softflowd into nfacctd), then summarize
	$(LAB_ENV) ansible-playbook tests/lab/traffic.yml -i inventories/lab
	$(LAB_ENV) ANSIBLE_CALLBACK_RESULT_FORMAT=yaml ansible-playbook tests/lab/summary.yml -i inventories/lab

.PHONY: scenario
scenario: venv  ## The workshop's exercise on the running lab: MISP event to alert and mail, with its times
	$(LAB_ENV) ANSIBLE_CALLBACK_RESULT_FORMAT=yaml ansible-playbook tests/lab/scenario.yml -i inventories/lab

.PHONY: lab-destroy
lab-destroy: venv  ## Remove the lab's containers, network and state
	$(LAB_ENV) ansible-playbook tests/lab/destroy.yml -i inventories/lab

.PHONY: bench-ingest
bench-ingest: venv deps  ## Ingest benchmark: the ECS pipelines vs raw _bulk on an OpenSearch test node
	python benchmarks/ingest.py $(BENCH_ARGS)

.PHONY: bench-converge
bench-converge: venv  ## Re-converge benchmark: site.yml on the converged lab (run `make lab` first)
	$(LAB_ENV) python benchmarks/converge.py $(BENCH_ARGS)

.PHONY: clean
clean:  ## Remove build output (keeps the venv)
	rm -rf $(BUILD) tests/output .pytest_cache .ruff_cache

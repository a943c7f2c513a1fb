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

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export WLCG_SOC_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_FORCE_COLOR ?= 0
export PY_COLORS ?= 0

.PHONY: help
help:  ## List the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## /{printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.installed  ## Controller tooling in $(VENV)

.PHONY: deps
deps:  ## Debian packages the tests use on the controller (memcached, shellcheck)
	tests/deps.sh

.PHONY: hosts
hosts:  ## Podman and the Debian 12 systemd image for test hosts (root)
	tests/hosts/setup.sh

.PHONY: build
build: venv  ## Build the collection tarball and install it under $(BUILD)/collections
	rm -rf $(BUILD) && mkdir -p $(COLLECTIONS)
	ansible-galaxy collection build --force --output-path $(BUILD) .
	ansible-galaxy collection install --force --offline -p $(COLLECTIONS) $(TARBALL)

.PHONY: lint
lint: venv  ## yamllint, ansible-lint (production profile), ruff, changelog fragments
	yamllint --strict .
	ansible-lint --profile production --strict
	ruff check .
	ruff format --check .
	antsibull-changelog lint

.PHONY: sanity
sanity: venv deps  ## ansible-test sanity on the collection
	tests/sanity/run.sh

.PHONY: unit
unit: venv build deps  ## pytest unit tests (run against the built collection)
	pytest -n 2 tests/unit

.PHONY: readmes
readmes: venv  ## Write roles/*/README.md from their meta/argument_specs.yml
	python tests/role_readme.py

.PHONY: importer
importer: venv build  ## Galaxy's import check (galaxy-importer, with ansible-lint) on the built tarball
	cd $(BUILD) && GALAXY_IMPORTER_CONFIG=$(CURDIR)/tests/galaxy-importer.cfg \
	  GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP=$(abspath $(BUILD))/importer-tmp \
	  python -m galaxy_importer.main $(notdir $(TARBALL)) | tee importer.log
	@# The importer passes with lint findings and other warnings; Galaxy shows them: fail on them.
	@! grep -E '^(WARNING|ERROR|CRITICAL):' $(BUILD)/importer.log

.PHONY: molecule
molecule: venv hosts build  ## Molecule: converge, idempotence, verify for every scenario
	MOLECULE_JOBS=$(MOLECULE_JOBS) tests/molecule.sh

.PHONY: test
test: lint sanity unit importer molecule  ## Everything CI runs

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
	$(LAB_ENV) ANSIBLE_CALLBACK_RESULT_FORMAT=yaml ansible-playbook tests/lab/summary.yml -i inventories/lab

.PHONY: lab-destroy
lab-destroy: venv  ## Remove the lab's containers, network and state
	$(LAB_ENV) ansible-playbook tests/lab/destroy.yml -i inventories/lab

.PHONY: bench-converge
bench-converge: venv  ## Re-converge benchmark: site.yml on the converged lab (run `make lab` first)
	$(LAB_ENV) python benchmarks/converge.py $(BENCH_ARGS)

.PHONY: clean
clean:  ## Remove build output (keeps the venv)
	rm -rf $(BUILD) tests/output .pytest_cache .ruff_cache

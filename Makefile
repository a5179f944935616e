# Two commands: `make run` starts the whole platform on this machine, `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
CHROMIUM ?= /usr/bin/chromium
# The hub venv must come from a Python that student users can execute (not one under /root).
HUB_PYTHON ?= $(shell test -x /usr/bin/python3.11 && echo /usr/bin/python3.11 || command -v python3.11)
HUB_VENV   := .venv-hub
# the kernels' progress reporter for the live room and JupyterLab's "Ask for help" button
# (infra/jupyterhub/progress), installed into the hub venv
HUB_PROGRESS := $(sort $(wildcard infra/jupyterhub/progress/pyproject.toml infra/jupyterhub/progress/etc/*.py infra/jupyterhub/progress/wod_progress/*.py infra/jupyterhub/progress/labextension/*.json infra/jupyterhub/progress/labextension/*/*))
HUB_STAMP  := $(HUB_VENV)/.installed-$(shell cat infra/jupyterhub/requirements.txt $(HUB_PROGRESS) | sha1sum | cut -c1-12)
NODE_STAMP := node_modules/.installed-$(shell cat package-lock.json | sha1sum | cut -c1-12)


.PHONY: help install system browser run sync check test test-fast lint bench package deploy deploy-rehearsal clean

help:
	@echo "make run     start the platform on this machine (catalog :8000, inbox :8025)"
	@echo "make test    install everything and run the whole test suite"
	@echo "make check   validate workshops/ and the translations ; make sync  sync workshops/ into a running local stack"
	@echo "make lint    ruff, mypy and the import layers (config in pyproject.toml)"
	@echo "make bench   run the benchmarks in bench/"
	@echo "make package REGION=eu-west-1   CloudFormation + deployment package in dist/ (no AWS account needed)"
	@echo "make deploy-rehearsal   the deploy below against an embedded AWS, then a registration (no account needed)"
	@echo "make deploy  STACK=wod ARTIFACT_BUCKET=... PARAMS='PublicUrl=... ...'   deploy them (see docs/deploy.md)"

$(STAMP): requirements.txt requirements-dev.txt
	@echo "Installing Python packages into $(VENV) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip<26.3"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

$(HUB_STAMP): infra/jupyterhub/requirements.txt $(HUB_PROGRESS)
	@echo "Installing JupyterHub into $(HUB_VENV) ..."
	@test -x $(HUB_VENV)/bin/python || $(HUB_PYTHON) -m venv $(HUB_VENV)
	@$(HUB_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip<26.3"
	@$(HUB_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/jupyterhub/requirements.txt
	@$(HUB_VENV)/bin/python -m pip install --quiet --disable-pip-version-check ./infra/jupyterhub/progress
	@rm -rf infra/jupyterhub/progress/build infra/jupyterhub/progress/*.egg-info
	@rm -f $(HUB_VENV)/.installed-* && touch $@

$(NODE_STAMP): package.json package-lock.json
	@echo "Installing node packages (configurable-http-proxy, asl-validator, axe-core) ..."
	@npm ci --no-audit --no-fund --loglevel=error
	@rm -f node_modules/.installed-* && touch $@

install: $(STAMP) $(HUB_STAMP) $(NODE_STAMP)

# Debian packages: iptables fences students off the platform's local ports; mkfs.ext4 makes each
# student's home of a fixed size; Chromium drives the browser tests (Playwright cannot download its
# own browser here).
APT_INSTALL = if [ "$$(id -u)" = 0 ]; then echo "Installing $(1) ..."; \
	  (apt-get install -y -qq $(1) >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; }); \
	  else echo "Please install $(1): sudo apt-get install $(1)"; exit 1; fi

system:
	@command -v iptables >/dev/null || $(call APT_INSTALL,iptables)
	@command -v mkfs.ext4 >/dev/null || $(call APT_INSTALL,e2fsprogs)

browser: system
	@test -x $(CHROMIUM) || $(call APT_INSTALL,chromium)

run: install system
	$(BIN)/python -m local run

check: install
	$(BIN)/python -m local.messages check
	$(BIN)/python -m chalicelib.catalog check workshops

sync: install
	$(BIN)/python -m local sync

# The suite runs on TEST_WORKERS pytest-xdist workers, a module's tests on one worker (tests/conftest.py).
TEST_WORKERS ?= 3
test: install browser lint
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

test-fast: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not e2e"

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/register_burst.py

# AWS: the merge template from infra/, then Chalice's package (SAM) merged with it.
REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)
STACK ?= wod
DIST := dist

package: install
	@$(BIN)/python -m infra.merge --out $(DIST)/merge-template.json
	@rm -rf $(DIST)/package
	AWS_DEFAULT_REGION=$(REGION) $(BIN)/chalice package --stage aws --merge-template $(DIST)/merge-template.json $(DIST)/package
	@$(BIN)/python -m infra.bytecode $(DIST)/package/deployment.zip
	@echo "template: $(DIST)/package/sam.json  code: $(DIST)/package/deployment.zip ($$(du -h $(DIST)/package/deployment.zip | cut -f1))"

deploy: package
	$(BIN)/python -m infra.deploy --region $(REGION) --stack $(STACK) --bucket "$(ARTIFACT_BUCKET)" \
	  --package $(DIST)/package -- $(PARAMS)

# The same deploy commands against an embedded AWS, then a registration on what they created.
deploy-rehearsal: package
	$(BIN)/python -m local.rehearsal --package $(DIST)/package

clean:
	@# the Linux accounts this state's hub made for students go with it (only those it recorded), as the
	@# hub removes one: processes, cgroups, home image
	@if [ -d .wod/hub/accounts ]; then python3 infra/jupyterhub/student_accounts.py remove-all .wod/hub; fi
	rm -rf $(VENV) $(HUB_VENV) node_modules .wod .pytest_cache .hypothesis test-artifacts $(DIST) \
	  .ruff_cache .mypy_cache .import_linter_cache

# Targets a newcomer can guess: `make run`, `make test`, `make build`, `make deploy`, `make bench`.
# Each sets up .venv itself (Python 3.13 like the Lambda runtime when available, else >= 3.11).

PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3) \
                      $(shell command -v python3.13 python3.12 python3 2>/dev/null))
VENV := .venv
BIN := $(VENV)/bin
# The Lambda runs on arm64 (template.yaml); tests build for the host to import the artifact.
LAMBDA_PLATFORM ?= manylinux2014_aarch64
LAMBDA_PYTHON ?= 3.13

.PHONY: run test lint build deploy bench replay event clean build-ForwarderFunction

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

run: $(BIN)/.installed  ## map and deliver a sample batch against local AWS + Graph stand-ins
	$(BIN)/python -m localdev.run $(ARGS)

test: $(BIN)/.installed  ## lint, then every test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/cfn-lint template.yaml

# Called by `sam build` (BuildMethod: makefile) with ARTIFACTS_DIR set, and by tests with a host platform.
build-ForwarderFunction:
	rm -rf "$(ARTIFACTS_DIR)/handler" "$(ARTIFACTS_DIR)/forwarder"
	mkdir -p "$(ARTIFACTS_DIR)"
	cp -r handler forwarder "$(ARTIFACTS_DIR)/"
	find "$(ARTIFACTS_DIR)" -name __pycache__ -prune -exec rm -rf {} +
	$(PYTHON) -m pip install --quiet --no-compile --disable-pip-version-check -r requirements.txt \
	  --target "$(ARTIFACTS_DIR)" --platform $(LAMBDA_PLATFORM) --implementation cp \
	  --python-version $(LAMBDA_PYTHON) --only-binary=:all: --upgrade
	# pycountry's translations (22 MB of its 23) are never read: the code looks up English names only.
	rm -rf "$(ARTIFACTS_DIR)/pycountry/locales"
	# /var/task is read-only, so without shipped bytecode every cold start compiles every module.
	# unchecked-hash: the zip does not keep source mtimes reliably, and the code never changes in place.
	if $(PYTHON) -c 'import sys; sys.exit(f"{sys.version_info[0]}.{sys.version_info[1]}" != "$(LAMBDA_PYTHON)")'; \
	then $(PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash "$(ARTIFACTS_DIR)" >/dev/null; \
	else echo "note: $(PYTHON) is not Python $(LAMBDA_PYTHON); the artifact ships without bytecode"; fi

build:  ## the deployable artifact, with the SAM CLI when installed, else the same Makefile target
	if command -v sam >/dev/null; then sam build; \
	else $(MAKE) build-ForwarderFunction ARTIFACTS_DIR=$(CURDIR)/.aws-sam/build/ForwarderFunction; fi

deploy:
	sam build && sam deploy --guided

bench: $(BIN)/.installed
	$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python -m bench $(ARGS)

event: $(BIN)/.installed  ## print events/$(NAME).json rebased to now: make -s event NAME=purchase | sam local invoke -e -
	@$(BIN)/python -m localdev.samples $(NAME) $(ARGS)

replay: $(BIN)/.installed  ## re-send parked batches (see README, "Parking and replay")
	$(BIN)/python -m forwarder.replay $(ARGS)

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache .hypothesis

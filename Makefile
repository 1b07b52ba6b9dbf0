# Targets a newcomer can guess: `make run`, `make test`, `make build`, `make deploy`, `make bench`.
# `make unit` runs only the unit tests (seconds); `make lock` re-locks after a change to pyproject.toml.
# Each sets up .venv itself (Python 3.13 like the Lambda runtime when available, else >= 3.11);
# `make deploy` needs only Python and the SAM CLI.

PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3) \
                      $(shell command -v python3.13 python3.12 python3 2>/dev/null))
VENV := .venv
BIN := $(VENV)/bin
# The Lambda runs on arm64 (template.yaml); tests build for the host to import the artifact.
LAMBDA_PLATFORM ?= manylinux2014_aarch64
LAMBDA_PYTHON ?= 3.13
# Runtime dependencies, installed once per requirements.txt, platform and Python version and copied into
# each build (pip takes about 5 s, the copy well under 1 s). `make clean` empties it; a changed
# requirements.txt gets a new entry.
DEPS_CACHE ?= $(CURDIR)/.aws-sam/deps-cache
DEPS_DIR = $(DEPS_CACHE)/$(shell $(PYTHON) -c "import hashlib; print(hashlib.sha256(open('requirements.txt', 'rb').read() + b' $(LAMBDA_PLATFORM) $(LAMBDA_PYTHON)').hexdigest()[:16])")
# Compile bytecode only when $(PYTHON) is the runtime's version (its bytecode is what Lambda can use).
SAME_PYTHON = $(PYTHON) -c 'import sys; sys.exit(f"{sys.version_info[0]}.{sys.version_info[1]}" != "$(LAMBDA_PYTHON)")'
# unchecked-hash: the zip does not keep source mtimes reliably, and the code never changes in place.
# Source paths recorded as Lambda's (/var/task/...): the same bytes wherever the build ran.
COMPILE = $(PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash -p /var/task
# The environment `make deploy` deploys to: a section of samconfig.toml (staging or prod).
ENV ?= staging

.PHONY: run test unit typecheck lint lock build deploy deploy-built local-invoke local-api local-invoke-buffered \
	bench parked replay backfill check-connections event clean build-ForwarderFunction build-SenderFunction \
	build-BackfillFunction

# requirements-dev.txt (runtime + dev) is exported from uv.lock with hashes: plain pip installs it, no uv needed.
$(BIN)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@

# Dependencies are declared in pyproject.toml and locked in uv.lock; requirements.txt (what the artifact ships)
# and requirements-dev.txt (what .venv gets) are exported from the lock, never edited by hand
# (tests/infra/test_dependencies.py fails when they disagree). After editing pyproject.toml: `make lock`;
# to upgrade: `make lock ARGS="--upgrade-package boto3"` (one package) or `ARGS=--upgrade` (all).
UV_EXPORT = $(BIN)/uv export --quiet --frozen --no-emit-project
lock: $(BIN)/.installed
	$(BIN)/uv lock $(ARGS)
	$(UV_EXPORT) --no-dev >requirements.txt.tmp && mv requirements.txt.tmp requirements.txt
	$(UV_EXPORT) --all-groups >requirements-dev.txt.tmp && mv requirements-dev.txt.tmp requirements-dev.txt

run: $(BIN)/.installed  ## map and deliver a sample batch against local AWS + Graph stand-ins
	$(BIN)/python -m localdev.run $(ARGS)

test: $(BIN)/.installed  ## lint, type check, then every test (unit, integration, infra)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: $(BIN)/.installed  ## the unit tests only: no servers, no build; seconds
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

typecheck: $(BIN)/.installed  ## mypy --strict over forwarder/, handler/, localdev/ (pyproject.toml, [tool.mypy])
	$(BIN)/mypy

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/cfn-lint template.yaml

# Called by `sam build` (BuildMethod: makefile; samconfig.toml builds in the source tree, so nothing is
# copied first) with ARTIFACTS_DIR set, and by tests with a host platform. SAM builds each makefile
# function on its own (it never shares a makefile build, and builds a function whatever its Condition):
# the webhook (ForwarderFunction), the buffered sender and the backfill function get the same artifact. Its
# dependencies are hard links to the cache's files where the file system allows (a copy elsewhere, or where
# cp has no -l), so another function costs no copy and no disk; never edit a built dependency in place.
build-ForwarderFunction build-SenderFunction build-BackfillFunction: $(DEPS_DIR)
	test -n "$(ARTIFACTS_DIR)"
	rm -rf "$(ARTIFACTS_DIR)"
	mkdir -p "$(ARTIFACTS_DIR)"
	cp -R -l "$(DEPS_DIR)/." "$(ARTIFACTS_DIR)/" 2>/dev/null || \
	  { rm -rf "$(ARTIFACTS_DIR)" && mkdir -p "$(ARTIFACTS_DIR)" && cp -R "$(DEPS_DIR)/." "$(ARTIFACTS_DIR)/"; }
	cp -r handler forwarder "$(ARTIFACTS_DIR)/"
	find "$(ARTIFACTS_DIR)/handler" "$(ARTIFACTS_DIR)/forwarder" -name __pycache__ -prune -exec rm -rf {} +
	# /var/task is read-only, so without shipped bytecode every cold start compiles every module.
	if $(SAME_PYTHON); then $(COMPILE) -s "$(ARTIFACTS_DIR)" "$(ARTIFACTS_DIR)/handler" "$(ARTIFACTS_DIR)/forwarder" >/dev/null; \
	else echo "note: $(PYTHON) is not Python $(LAMBDA_PYTHON); the artifact ships without bytecode"; fi

# Filled in a temporary directory and renamed, so an interrupted install never looks complete.
$(DEPS_DIR): requirements.txt
	rm -rf "$@.tmp" && mkdir -p "$@.tmp"
	$(PYTHON) -m pip install --quiet --no-compile --disable-pip-version-check --require-hashes -r requirements.txt \
	  --target "$@.tmp" --platform $(LAMBDA_PLATFORM) --implementation cp \
	  --python-version $(LAMBDA_PYTHON) --only-binary=:all: --upgrade
	# pycountry's translations (22 MB of its 23) are never read: the code looks up English names only.
	rm -rf "$@.tmp/pycountry/locales"
	if $(SAME_PYTHON); then $(COMPILE) -s "$@.tmp" "$@.tmp" >/dev/null; fi
	rm -rf "$@" && mv "$@.tmp" "$@"

build:  ## the deployable artifact, with the SAM CLI when installed, else the same Makefile target
	if command -v sam >/dev/null; then sam build; \
	else $(MAKE) build-ForwarderFunction ARTIFACTS_DIR=$(CURDIR)/.aws-sam/build/ForwarderFunction; fi

deploy:  ## sam build, then deploy to ENV=staging|prod as samconfig.toml says (--guided the first time only)
	sam build
	$(PYTHON) -m localdev.samconfig deploy $(ENV) --overrides '$(OVERRIDES)'

deploy-built:  ## deploy .aws-sam/build as it is to ENV (the CI pipeline deploys one build to both)
	$(PYTHON) -m localdev.samconfig deploy $(ENV) --overrides '$(OVERRIDES)'

# The local targets build only the functions they run (`sam build <LogicalId>`). ARGS goes to
# localdev.sam_local (--api, --timeout, --bind...), SAM_ARGS to `sam local` itself (--skip-pull-image,
# --invoke-image, --debug...). Exit code: sam's own when it fails, else 0 when every answer was below 500
# (and, buffered, the sender returned no batchItemFailures), 1 otherwise.
local-invoke: $(BIN)/.installed  ## sam local invoke, fully local: stand-ins here, a sample dated now (Docker)
	sam build ForwarderFunction
	$(BIN)/python -m localdev.sam_local invoke $(or $(NAME),purchase) $(ARGS) -- $(SAM_ARGS)

local-api: $(BIN)/.installed  ## sam local start-api on port 3000 against the same stand-ins (Docker)
	sam build ForwarderFunction
	$(BIN)/python -m localdev.sam_local start-api $(ARGS) -- $(SAM_ARGS)

local-invoke-buffered: $(BIN)/.installed  ## DELIVERY_MODE=buffered in containers: the webhook queues, SenderFunction sends
	sam build
	$(BIN)/python -m localdev.sam_local invoke-buffered $(or $(NAME),purchase add_to_cart) $(ARGS) -- $(SAM_ARGS)

bench: $(BIN)/.installed
	$(BIN)/python -m bench $(ARGS)

event: $(BIN)/.installed  ## print events/$(NAME).json rebased to now: make -s event NAME=purchase | sam local invoke -e -
	@$(BIN)/python -m localdev.samples $(NAME) $(ARGS)

parked: $(BIN)/.installed  ## list parked events: counts and sets, nothing sent (docs/deploy.md, section 10)
	@$(BIN)/python -m forwarder.replay --list $(ARGS)

check-connections: $(BIN)/.installed  ## check a connections document before deploying it: make check-connections FILE=connections.json
	test -n "$(FILE)" || (echo "usage: make check-connections FILE=connections.json" >&2; exit 2)
	$(BIN)/python -m forwarder.connections --check "$(FILE)"

replay: $(BIN)/.installed  ## re-send parked events (docs/deploy.md, section 10)
	@$(BIN)/python -m forwarder.replay $(ARGS)

backfill: $(BIN)/.installed  ## send historic sales from files: make backfill ARGS="--dry-run sales.csv" (docs/backfill.md)
	@$(BIN)/python -m forwarder.backfill $(ARGS)

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache .mypy_cache .hypothesis

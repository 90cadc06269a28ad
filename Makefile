# The two commands of the README: `make run` and `make test`. Everything else they need is here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint format bench clean image image-test browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "threadbot needs Python 3.11 or newer: make PYTHON=python3.11 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools warns about the folders named like the packages: that is this checkout's layout.
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Set up, index the sample documents on first start, and chat in the terminal.
run: $(STAMP)
	$(BIN)/threadbot ingest --if-empty examples/docs
	$(BIN)/threadbot chat

## Set up, lint, and run the whole test suite.
test: $(STAMP) lint browser
	$(BIN)/python -m pytest

## Headless Chromium, for the test that renders `threadbot report --format html` and takes a
## screenshot: Debian's package, installed when missing (as root, or with sudo that asks for no
## password); otherwise that one test is skipped, and this says so.
APT_CHROMIUM = env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then sudo=; \
		elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
		else echo "chromium is missing and cannot be installed here (not root, no sudo -n): the HTML report's screenshot test will be skipped"; exit 0; fi; \
		echo "Installing chromium for the HTML report's screenshot test"; \
		$$sudo $(APT_CHROMIUM) >/dev/null 2>&1 || \
		{ $$sudo apt-get update -qq && $$sudo $(APT_CHROMIUM) >/dev/null; } || \
		echo "chromium could not be installed: the HTML report's screenshot test will be skipped"; \
	}

## The loop to run while working: lint, types, import contracts, and every test that needs no
## Redis Cluster and kills no process, spread over the cores (under 3 minutes on 2).
test-fast: $(STAMP) lint
	$(BIN)/python -m pytest -m "not cluster and not kills" -n auto

## Lint, format, types, and the architecture's import contracts (pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict core
	$(BIN)/mypy bots
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	for script in bench/[!_]*.py; do $(BIN)/python -m bench.$$(basename $$script .py) || exit 1; done

## The container image (minutes: not part of `make test`). CONTAINER=docker works too.
CONTAINER ?= podman
IMAGE ?= threadbot
# The host's CA bundle, mounted into the build so pip trusts the same TLS proxies as the host.
BUILD_CA ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
PODMAN_FLAGS = --isolation chroot --format docker \
	$(if $(BUILD_CA),--volume $(BUILD_CA):/run/build-ca.crt:ro --build-arg BUILD_CA=/run/build-ca.crt)
image:
	$(CONTAINER) build $(if $(filter podman,$(CONTAINER)),$(PODMAN_FLAGS)) -t $(IMAGE) .
	$(CONTAINER) images $(IMAGE)

## Build the image, then run `threadbot --help` and a piped `threadbot chat` inside it (buildah
## runs a command in an image where `podman run` cannot, as on the build machines).
image-test: image
	-buildah rm threadbot-smoke >/dev/null 2>&1
	buildah from --name threadbot-smoke $(IMAGE)
	buildah run --isolation chroot threadbot-smoke -- threadbot --help
	buildah run --isolation chroot threadbot-smoke -- sh -c '\
		threadbot ingest /opt/threadbot/examples/docs && \
		printf "How do I reset a conversation?\n/reset\n" | threadbot chat'
	buildah rm threadbot-smoke

clean:
	rm -rf $(VENV) build *.egg-info

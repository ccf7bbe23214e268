# berth — build, test, run. All targets run from the repository root.
NODE    ?= node
NPX     ?= npx
BUILD   := $(abspath build)
NATIVE  := $(wildcard src/shim/Makefile src/pinns/Makefile src/notify/Makefile src/launch/Makefile src/malloc/Makefile src/durable/Makefile)
# Node flags and environment berthd runs with wherever it is started (deploy/node-flags, deploy/node-env: also the
# installed launcher and the tests).
BERTHD_NODE_FLAGS := $(shell cat deploy/node-flags)
BERTHD_NODE_ENV := $(shell grep -v '^\#' deploy/node-env)

.PHONY: all build native ts gen test run bench soak lint clean install deb docs

all: build

build: native ts

node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch node_modules

# The native parts (shim, namespace pinner, ...): C, the system compiler (berth-malloc.node's V8 call is C++).
native:
	@mkdir -p $(BUILD)
	@for mk in $(NATIVE); do $(MAKE) -C $$(dirname $$mk) OUT=$(BUILD) || exit 1; done

ts: node_modules
	$(NPX) tsc -p tsconfig.json

# Regenerates src/gen from proto/ (committed; run after changing the proto).
gen: node_modules
	npm run gen

test: build
	$(NPX) mocha

# berthd in the foreground with the built-in defaults (needs root).
run: build
	env $(BERTHD_NODE_ENV) $(NODE) $(BERTHD_NODE_FLAGS) dist/src/daemon/main.js

bench: build
	$(NODE) dist/bench/run.js

# N pod cycles (create, exec, logs, teardown) and how much every resource grew (default 1000; make soak N=50 for a quick look)
N ?= 1000
soak: build
	$(NODE) dist/bench/soak.js $(N)

lint: node_modules
	$(NPX) tsc -p tsconfig.json --noEmit
	$(NPX) eslint src test bench

# Into /usr/local with production npm dependencies only (deploy/stage.sh); the
# config, drop-in dir and unit only where none exist yet.
install: build
	PREFIX=/usr/local ./deploy/stage.sh
	install -d /etc/berth/config.d /etc/berth/certs.d
	test -e /etc/berth/config.toml || install -m 0644 deploy/config.toml /etc/berth/config.toml
	test -e /etc/systemd/system/berthd.service || install -m 0644 deploy/berthd.service /etc/systemd/system/berthd.service

# A Debian package, build/berth_<version>_<arch>.deb (deploy/deb/build-deb.sh):
# `apt install ./build/berth_*.deb`.
deb: build
	./deploy/deb/build-deb.sh

# Regenerates the config reference in README.md and deploy/config.toml from the schema.
docs: ts
	$(NODE) dist/src/daemon/main.js config default > deploy/config.toml
	$(NODE) dist/src/daemon/main.js config reference > build/config-reference.md
	python3 -c 'import re,sys; r=open("README.md").read(); t=open("build/config-reference.md").read(); \
	  open("README.md","w").write(re.sub(r"(<!-- config-reference:begin -->\n).*?(<!-- config-reference:end -->)", lambda m: m.group(1)+t+m.group(2), r, flags=re.S))'

clean:
	rm -rf dist build

# berth — build, test, run. All targets run from the repository root.
NODE    ?= node
NPX     ?= npx
BUILD   := $(abspath build)
NATIVE  := $(wildcard src/shim/Makefile src/pinns/Makefile)

.PHONY: all build native ts gen test run bench soak lint clean install docs

all: build

build: native ts

node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch node_modules

# The native parts (shim, namespace pinner): plain C, the system compiler.
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
	$(NODE) dist/src/daemon/main.js

bench: build
	$(NODE) dist/bench/run.js

# N pod cycles (create, exec, logs, teardown) and how much every resource grew: make soak N=200
N ?= 50
soak: build
	$(NODE) dist/bench/soak.js $(N)

lint: node_modules
	$(NPX) tsc -p tsconfig.json --noEmit
	$(NPX) eslint src test bench

install: build
	install -d /usr/local/lib/berth /etc/berth
	cp -r dist node_modules proto package.json /usr/local/lib/berth/
	@for b in $(wildcard $(BUILD)/berth-*); do install -m 0755 $$b /usr/local/lib/berth/; done
	printf '#!/bin/sh\nexec node /usr/local/lib/berth/dist/src/daemon/main.js "$$@"\n' > /usr/local/bin/berthd
	printf '#!/bin/sh\nexec node /usr/local/lib/berth/dist/src/cli/main.js "$$@"\n' > /usr/local/bin/berth
	chmod 0755 /usr/local/bin/berthd /usr/local/bin/berth

# Regenerates the config reference in README.md and deploy/config.toml from the schema.
docs: ts
	$(NODE) dist/src/daemon/main.js config default > deploy/config.toml
	$(NODE) dist/src/daemon/main.js config reference > build/config-reference.md
	python3 -c 'import re,sys; r=open("README.md").read(); t=open("build/config-reference.md").read(); \
	  open("README.md","w").write(re.sub(r"(<!-- config-reference:begin -->\n).*?(<!-- config-reference:end -->)", lambda m: m.group(1)+t+m.group(2), r, flags=re.S))'

clean:
	rm -rf dist build

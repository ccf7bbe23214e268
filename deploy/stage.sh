#!/bin/sh
# Lays out an installed berth under $DESTDIR$PREFIX, shared by `make install`
# (DESTDIR empty, PREFIX=/usr/local) and `make deb` (DESTDIR=<staging dir>,
# PREFIX=/usr). Expects `make build` done. Production npm dependencies only:
# `npm ci --omit=dev` in the staging copy, never the repository's node_modules.
#
#   $PREFIX/lib/berth/{dist/src, proto, package.json, node_modules}
#   $PREFIX/lib/berth/build/berth-*   (the native helpers, where dist/ looks for them)
#   $PREFIX/bin/berthd, $PREFIX/bin/berth
set -eu
cd "$(dirname "$0")/.."
: "${PREFIX:=/usr/local}"
: "${DESTDIR:=}"
LIB="$DESTDIR$PREFIX/lib/berth"

rm -rf "$LIB"
install -d "$LIB/dist" "$LIB/build" "$DESTDIR$PREFIX/bin"
cp -r dist/src "$LIB/dist/src"
# src/version.ts imports ../package.json: tsc puts a copy next to src/.
cp dist/package.json "$LIB/dist/"
cp -r proto "$LIB/proto"
cp package.json package-lock.json "$LIB/"
( cd "$LIB" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error )
rm "$LIB/package-lock.json"
# The helpers by name: build/ also holds test-only variants (the -asan builds).
for b in berth-shim berth-exec berth-pinns berth-nsdial berth-notify berth-launch berth-malloc.node berth-durable.node; do install -m 0755 "build/$b" "$LIB/build/"; done
# berthd runs with the node flags of deploy/node-flags (V8 heap sizing) and the
# environment of deploy/node-env (malloc arenas); `make run` and the tests use them too.
berthd_env=$(grep -v '^#' deploy/node-env | sed -n 's/^\([A-Z_][A-Z0-9_]*\)=\(.*\)$/export \1="${\1:-\2}"/p')
for cmd in "berthd:daemon:$(cat deploy/node-flags)" berth:cli:; do
  name=${cmd%%:*}
  rest=${cmd#*:}
  dir=${rest%%:*}
  flags=${rest#*:}
  env_lines=
  [ "$name" = berthd ] && env_lines="$berthd_env
"
  printf '#!/bin/sh\n%sexec node %s%s/lib/berth/dist/src/%s/main.js "$@"\n' "$env_lines" "${flags:+$flags }" "$PREFIX" "$dir" > "$DESTDIR$PREFIX/bin/$name"
  chmod 0755 "$DESTDIR$PREFIX/bin/$name"
done

#!/bin/sh
# Builds build/berth_<version>_<arch>.deb with dpkg-deb: berth under /usr
# (deploy/stage.sh), the systemd unit, the default config as a conffile, and
# the CNI example, kubelet notes and crictl.yaml as documentation.
set -eu
cd "$(dirname "$0")/../.."
VERSION=$(node -p "require('./package.json').version")
ARCH=$(dpkg --print-architecture)
# Where the package (and its staging tree) go; tests build into a temp dir.
OUT=${BERTH_DEB_OUT:-build}
STAGE="$OUT/deb/berth_${VERSION}_${ARCH}"
rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN"

DESTDIR="$STAGE" PREFIX=/usr ./deploy/stage.sh

install -D -m 0644 deploy/config.toml "$STAGE/etc/berth/config.toml"
install -d -m 0755 "$STAGE/etc/berth/config.d" "$STAGE/etc/berth/certs.d"
install -d "$STAGE/lib/systemd/system"
sed -e 's#/usr/local/bin/berthd#/usr/bin/berthd#' -e 's#file:///usr/local/lib/berth/README.md#file:///usr/share/doc/berth/README.md#' \
  deploy/berthd.service > "$STAGE/lib/systemd/system/berthd.service"
chmod 0644 "$STAGE/lib/systemd/system/berthd.service"

DOC="$STAGE/usr/share/doc/berth"
install -d "$DOC/examples/cni" "$DOC/examples/certs.d"
install -m 0644 README.md deploy/kubelet.md deploy/crictl.yaml deploy/prometheus.yaml deploy/berth-alerts.yaml deploy/grafana-dashboard.json "$DOC/"
install -m 0644 deploy/cni/10-berth-bridge.conflist deploy/cni/README.md "$DOC/examples/cni/"
cp -r deploy/certs.d/. "$DOC/examples/certs.d/"
printf 'berth is licensed under the Apache License, Version 2.0;\nsee /usr/share/common-licenses/Apache-2.0.\n' > "$DOC/copyright"

SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<CONTROL
Package: berth
Version: $VERSION
Architecture: $ARCH
Maintainer: berth developers <berth@localhost>
Installed-Size: $SIZE
Depends: nodejs (>= 20), runc | crun, iptables, mount, util-linux
Recommends: containernetworking-plugins, zstd
Suggests: cri-tools
Section: admin
Priority: optional
Homepage: https://github.com/berth/berth
Description: Kubernetes CRI container runtime
 berthd serves the CRI v1 API (RuntimeService and ImageService) on a unix
 socket for the kubelet and crictl; berth is its operator command. Written
 in TypeScript on Node.js, with small C helpers (per-container shim,
 namespace pinner, systemd notifier).
CONTROL
echo /etc/berth/config.toml > "$STAGE/DEBIAN/conffiles"
install -m 0755 deploy/deb/postinst deploy/deb/prerm deploy/deb/postrm "$STAGE/DEBIAN/"

# Root-owned files without needing fakeroot.
dpkg-deb --root-owner-group --build "$STAGE" "$OUT/berth_${VERSION}_${ARCH}.deb"

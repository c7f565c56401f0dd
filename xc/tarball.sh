#!/bin/sh
# Release tarball of one CPU: pixelserv-tls-VERSION-CPU/ with the binary, the man page, the
# init scripts, LICENSE and README.md; owners, order and dates fixed (SOURCE_DATE_EPOCH).
#   xc/tarball.sh CPU BINARY OUTDIR
set -eu
cd "$(dirname "$0")/.."
[ $# = 3 ] || { echo "usage: $0 CPU BINARY OUTDIR" >&2; exit 2; }
cpu=$1 bin=$2 out=$3
[ -x "$bin" ] || { echo "no binary $bin" >&2; exit 1; }
ver=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
name=pixelserv-tls-$ver-$cpu

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
d=$work/$name
install -d "$d/init"
install -m 0755 "$bin" "$d/pixelserv-tls"
install -m 0644 include-docs/pixelserv-tls.1 LICENSE README.md "$d/"
install -m 0755 include-docs/init/S80pixelserv-tls include-docs/init/openwrt-pixelserv-tls "$d/init/"
install -m 0644 include-docs/init/pixelserv-tls.service include-docs/init/openwrt-pixelserv-tls.config "$d/init/"
mkdir -p "$out"
(cd "$work" && tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner \
	--mtime="@$SOURCE_DATE_EPOCH" -cf - "$name") | gzip -9n > "$out/$name.tar.gz"
echo "$out/$name.tar.gz: $(wc -c < "$out/$name.tar.gz") bytes"

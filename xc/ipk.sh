#!/bin/sh
# Builds an Entware or OpenWrt package without the OpenWrt SDK, the way OpenWrt's ipkg-build
# lays one out: a gzipped tar of ./debian-binary, ./data.tar.gz and ./control.tar.gz, every
# member owned by root, sorted, dated SOURCE_DATE_EPOCH (so the same inputs give the same
# bytes). ARCH is the Architecture field: the Entware feed's or OpenWrt's name for the CPU,
# which opkg compares with `opkg print-architecture`.
#
#   xc/ipk.sh ARCH BINARY OUTDIR      e.g. xc/ipk.sh armv7-3.2 dist/pixelserv-tls-armv7-static dist
#   xc/ipk.sh --openwrt ARCH BINARY OUTDIR     e.g. --openwrt mips_24kc dist/pixelserv-tls-mips-static
#
# Entware: /opt/bin/pixelserv-tls, /opt/etc/init.d/S80pixelserv-tls, the man page.
# Entware's own package of the C server is also called pixelserv-tls, so this one installs
# as its upgrade (a higher Version) and takes over its files; a Conflicts line naming
# itself would only stop opkg. The init script is a conffile: an edited one (Diversion
# writes its IP into ARGS) is kept on upgrade. postinst only makes the CERT_PATH directory:
# an existing CA is never touched, and without one the server makes a new one at start.
#
# OpenWrt: /usr/sbin/pixelserv-tls, the procd script /etc/init.d/pixelserv-tls, the UCI file
# /etc/config/pixelserv-tls (a conffile) and /lib/upgrade/keep.d/pixelserv-tls (sysupgrade
# keeps the CA directory). postinst and prerm are OpenWrt's own two-liners: default_postinst
# enables and starts the service (in an image build only enables it), default_prerm stops
# and disables it; postinst-pkg only prints what to set. Nothing touches the CA.
set -eu
cd "$(dirname "$0")/.."
flavor=entware
[ "${1:-}" = --openwrt ] && { flavor=openwrt; shift; }
[ $# = 3 ] || { echo "usage: $0 [--openwrt] ARCH BINARY OUTDIR" >&2; exit 2; }
arch=$1 bin=$2 out=$3
[ -x "$bin" ] || { echo "no binary $bin" >&2; exit 1; }

pkg=pixelserv-tls
ver=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)-1
: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct 2>/dev/null || date +%s)}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=$work/data ctl=$work/control
install -d "$ctl"

entware() {
	install -d "$data/opt/bin" "$data/opt/etc/init.d" "$data/opt/share/man/man1"
	install -m 0755 "$bin" "$data/opt/bin/$pkg"
	install -m 0755 include-docs/init/S80pixelserv-tls "$data/opt/etc/init.d/S80$pkg"
	install -m 0644 include-docs/$pkg.1 "$data/opt/share/man/man1/$pkg.1"
	where="signed by the CA in
 /opt/var/cache/pixelserv (a new CA is made there when it has none)."
	echo "/opt/etc/init.d/S80$pkg" > "$ctl/conffiles"
	cat > "$ctl/postinst" <<'POSTINST'
#!/bin/sh
# The install root: opkg gives it as PKG_ROOT, OpenWrt's image builder as IPKG_INSTROOT.
# Only the directory is made: an existing CA in it is kept as it is, and the server makes a
# new one at its first start when there is none.
root=${IPKG_INSTROOT:-${PKG_ROOT:-}}
dir="${root%/}/opt/var/cache/pixelserv"
mkdir -p "$dir" && chmod 0755 "$dir" || exit 1
if [ -s "$dir/ca.crt" ] && [ -s "$dir/ca.key" ]; then
	echo "pixelserv-tls: keeping the CA in /opt/var/cache/pixelserv"
else
	echo "pixelserv-tls: a new CA will be made in /opt/var/cache/pixelserv at the first start;"
	echo "  install its /ca.crt on your devices (or put your ca.crt and ca.key there first)."
fi
echo "Set the listen IP in ARGS of /opt/etc/init.d/S80pixelserv-tls, then run it with 'start'."
exit 0
POSTINST
	chmod 0755 "$ctl/postinst"
}

openwrt() {
	install -d "$data/usr/sbin" "$data/etc/init.d" "$data/etc/config" "$data/lib/upgrade/keep.d"
	install -m 0755 "$bin" "$data/usr/sbin/$pkg"
	install -m 0755 include-docs/init/openwrt-pixelserv-tls "$data/etc/init.d/$pkg"
	install -m 0644 include-docs/init/openwrt-pixelserv-tls.config "$data/etc/config/$pkg"
	echo "/etc/$pkg/" > "$data/lib/upgrade/keep.d/$pkg"
	chmod 0644 "$data/lib/upgrade/keep.d/$pkg"
	where="signed by the CA in
 /etc/pixelserv-tls (flash); the certificates are kept in /tmp/pixelserv-tls
 (RAM). Settings: /etc/config/pixelserv-tls (uci)."
	echo "/etc/config/$pkg" > "$ctl/conffiles"
	cat > "$ctl/postinst" <<'POSTINST'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
POSTINST
	cat > "$ctl/prerm" <<'PRERM'
#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
PRERM
	cat > "$ctl/postinst-pkg" <<'POSTINST'
[ -n "${IPKG_INSTROOT}" ] && exit 0
ca=$(uci -q get pixelserv-tls.main.ca_dir || echo /etc/pixelserv-tls)
if [ -s "$ca/ca.crt" ] && [ -s "$ca/ca.key" ]; then
	echo "pixelserv-tls: keeping the CA in $ca"
else
	echo "pixelserv-tls: a new CA will be made in $ca at the first start; install its"
	echo "  /ca.crt on your devices (or put your ca.crt and ca.key there first)."
fi
if [ "$(uci -q get pixelserv-tls.main.enabled)" != 1 ]; then
	echo "pixelserv-tls: set the listen address and enable it:"
	echo "  uci set pixelserv-tls.main.listen='192.168.1.2'; uci set pixelserv-tls.main.enabled='1'"
	echo "  uci commit pixelserv-tls; service pixelserv-tls restart"
fi
exit 0
POSTINST
	chmod 0755 "$ctl/postinst" "$ctl/prerm" "$ctl/postinst-pkg"
}

$flavor
size=$(find "$data" -type f -exec cat {} + | wc -c)
cat > "$ctl/control" <<CONTROL
Package: $pkg
Version: $ver
License: LGPL-3.0-or-later
Section: net
Architecture: $arch
Installed-Size: $size
SourceDateEpoch: $SOURCE_DATE_EPOCH
Description: Tiny HTTP/1.1 + HTTPS null-content server for DNS ad blocking
 Rust rewrite of pixelserv-tls 2.x, statically linked (OpenSSL included).
 Certificates for blocked names are made on the fly, $where
CONTROL
echo 2.0 > "$work/debian-binary"

tgz() { # DIR ARCHIVE: tar of DIR's contents as ./...
	(cd "$1" && tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime="@$SOURCE_DATE_EPOCH" -cf - .) | gzip -9n > "$2"
}
tgz "$data" "$work/data.tar.gz"
tgz "$ctl" "$work/control.tar.gz"
touch -d "@$SOURCE_DATE_EPOCH" "$work/debian-binary" "$work/data.tar.gz" "$work/control.tar.gz"
mkdir -p "$out"
ipk=$out/${pkg}_${ver}_$arch.ipk
(cd "$work" && tar --format=gnu --owner=0 --group=0 --numeric-owner \
	--mtime="@$SOURCE_DATE_EPOCH" -cf - ./debian-binary ./data.tar.gz ./control.tar.gz) |
	gzip -9n > "$ipk"
echo "$ipk: $(wc -c < "$ipk") bytes"

#!/bin/sh
# Installs each Entware package given into a scratch root the way opkg would (data.tar.gz
# unpacked at /, postinst run with PKG_ROOT), checks its control fields and files, then
# starts the packaged binary under qemu-user with the scratch root's /opt mounted over
# /opt in a private mount namespace, so the built-in CERT_PATH /opt/var/cache/pixelserv
# is the scratch root's: HTTP GIF and an HTTPS first visit verified against the CA made
# there. Then it runs postinst again (an upgrade) and starts once more: the CA must be the
# same bytes. The binary must be a static one of the feed's CPU (readelf -h). armv7-2.6
# runs under qemu-arm -r 2.6.36 (uname says that kernel) with every newer system call
# refused (xc/old-kernel). Needs root (unshare -m,
# mount --bind).
#
#   xc/ipk-test.sh dist/pixelserv-tls_*_{armv7-2.6,armv7-3.2,aarch64-3.10,mipsel-3.4,mips-3.4,x64-3.2}.ipk
set -u
cd "$(dirname "$0")/.." || exit 1
. xc/ipk-lib.sh
[ $# -gt 0 ] || { echo "usage: $0 IPK..." >&2; exit 2; }

root=""
trap '[ -n "$root" ] && rm -rf "$root"' EXIT
trap 'exit 1' INT TERM

for ipk in "$@"; do
	echo "== $ipk"
	root=$(mktemp -d) || die "mktemp"
	unpack_ipk "$ipk" "$root"
	check_arch "$ipk"
	cpu_of "$arch"
	echo "control: Package pixelserv-tls, Version $(field Version), Architecture $arch"
	check_elf "$root/opt/bin/pixelserv-tls"
	for f in opt/bin/pixelserv-tls opt/etc/init.d/S80pixelserv-tls; do
		[ -x "$root/$f" ] || die "no executable ./$f"
	done
	[ -s "$root/opt/share/man/man1/pixelserv-tls.1" ] || die "no man page"
	grep -qx /opt/etc/init.d/S80pixelserv-tls "$pkgdir/control/conffiles" ||
		die "init script is not a conffile"
	sh -n "$root/opt/etc/init.d/S80pixelserv-tls" || die "init script syntax"

	certs=$root/opt/var/cache/pixelserv
	PKG_ROOT=$root sh "$pkgdir/control/postinst" >/dev/null || die "postinst"
	[ -d "$certs" ] || die "postinst made no $certs"
	grep -q '^ARGS="-z /opt/var/cache/pixelserv ' "$root/opt/etc/init.d/S80pixelserv-tls" ||
		die "the init script does not give -z /opt/var/cache/pixelserv"
	# The router binaries have Entware's CERT_PATH built in; x64-3.2 has the x86-64 binary,
	# whose default is /var/cache/pixelserv, and is started with the init script's -z.
	z=""
	# shellcheck disable=SC2086 # $qemu is a command prefix
	help=$($qemu "$root/opt/bin/pixelserv-tls" -h 2>&1)
	if [ "$arch" = x64-3.2 ]; then
		z=/opt/var/cache/pixelserv
		echo "ok   the init script gives -z $z (the x86-64 binary's default is another)"
	else
		echo "$help" | grep -q 'CERT_PATH.*default: /opt/var/cache/pixelserv)' ||
			die "-h does not show /opt/var/cache/pixelserv: $help"
		echo "ok   -h shows the default CERT_PATH /opt/var/cache/pixelserv"
	fi

	inroot="unshare -m --propagation private xc/in-root.sh $root"
	start() {
		sh .ci/static-check.sh --no-build --run "$inroot $qemu" --default-certs "$certs" \
			${z:+--cert-path "$z"} "$root/opt/bin/pixelserv-tls"
	}
	start || die "first start from the scratch root"
	sums=$(cd "$certs" && sha256sum ca.crt ca.key) || die "no CA in $certs"
	PKG_ROOT=$root sh "$pkgdir/control/postinst" >/dev/null || die "postinst (upgrade)"
	start >/dev/null || die "second start from the scratch root"
	[ "$(cd "$certs" && sha256sum ca.crt ca.key)" = "$sums" ] || die "the CA changed"
	echo "ok   postinst again and a second start keep the CA"
	rm -rf "$root"
	root=""
done
echo PASS

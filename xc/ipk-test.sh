#!/bin/sh
# Installs each Entware package given into a scratch root the way opkg would (data.tar.gz
# unpacked at /, postinst run with PKG_ROOT), checks its control fields and files, then
# starts the packaged binary under qemu-user with the scratch root's /opt mounted over
# /opt in a private mount namespace, so the built-in CERT_PATH /opt/var/cache/pixelserv
# is the scratch root's: HTTP GIF and an HTTPS first visit verified against the CA made
# there. Then it runs postinst again (an upgrade) and starts once more: the CA must be the
# same bytes. Needs root (unshare -m, mount --bind).
#
#   xc/ipk-test.sh dist/pixelserv-tls_*_{armv7-3.2,aarch64-3.10,mipsel-3.4}.ipk
set -u
cd "$(dirname "$0")/.." || exit 1
die() { echo "FAIL: $*" >&2; exit 1; }
[ $# -gt 0 ] || { echo "usage: $0 IPK..." >&2; exit 2; }

root=""
trap '[ -n "$root" ] && rm -rf "$root"' EXIT
trap 'exit 1' INT TERM

for ipk in "$@"; do
	echo "== $ipk"
	[ -s "$ipk" ] || die "no $ipk"
	root=$(mktemp -d) || die "mktemp"
	pkgdir=$root/.ipk
	mkdir -p "$pkgdir/control" || die "mkdir"
	tar -xzf "$ipk" -C "$pkgdir" || die "$ipk is not a gzipped tar"
	members=$(tar -tzf "$ipk" | tr '\n' ' ')
	[ "$members" = "./debian-binary ./data.tar.gz ./control.tar.gz " ] ||
		die "members: $members"
	[ "$(cat "$pkgdir/debian-binary")" = 2.0 ] || die "debian-binary"
	tar -xzf "$pkgdir/control.tar.gz" -C "$pkgdir/control" || die "control.tar.gz"
	tar -xzf "$pkgdir/data.tar.gz" -C "$root" || die "data.tar.gz"

	field() { sed -n "s/^$1: //p" "$pkgdir/control/control"; }
	arch=$(field Architecture)
	case ${ipk##*/} in *"_$arch.ipk") ;; *) die "Architecture $arch does not match the file name" ;; esac
	[ "$(field Package)" = pixelserv-tls ] || die "Package: $(field Package)"
	case $arch in
	armv7-3.2) qemu="qemu-arm -cpu cortex-a9" ;;
	aarch64-3.10) qemu="qemu-aarch64" ;;
	mipsel-3.4) qemu="qemu-mipsel -cpu 24Kc" ;;
	*) die "unknown Architecture $arch" ;;
	esac
	echo "control: Package pixelserv-tls, Version $(field Version), Architecture $arch"
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
	# shellcheck disable=SC2086 # $qemu is a command prefix
	help=$($qemu "$root/opt/bin/pixelserv-tls" -h 2>&1)
	echo "$help" | grep -q 'CERT_PATH.*default: /opt/var/cache/pixelserv)' ||
		die "-h does not show /opt/var/cache/pixelserv: $help"
	echo "ok   -h shows the default CERT_PATH /opt/var/cache/pixelserv"

	inroot="unshare -m --propagation private xc/in-root.sh $root"
	sh .ci/static-check.sh --no-build --run "$inroot $qemu" --default-certs "$certs" \
		"$root/opt/bin/pixelserv-tls" || die "first start from the scratch root"
	sums=$(cd "$certs" && sha256sum ca.crt ca.key) || die "no CA in $certs"
	PKG_ROOT=$root sh "$pkgdir/control/postinst" >/dev/null || die "postinst (upgrade)"
	sh .ci/static-check.sh --no-build --run "$inroot $qemu" --default-certs "$certs" \
		"$root/opt/bin/pixelserv-tls" >/dev/null || die "second start from the scratch root"
	[ "$(cd "$certs" && sha256sum ca.crt ca.key)" = "$sums" ] || die "the CA changed"
	echo "ok   postinst again and a second start keep the CA"
	rm -rf "$root"
	root=""
done
echo PASS

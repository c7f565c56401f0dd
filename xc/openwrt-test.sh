#!/bin/sh
# Installs each OpenWrt package given into a scratch root the way opkg does (data.tar.gz at
# /, the control files and the file list in /usr/lib/opkg/info) and checks it:
#  - the archive, the control fields (Architecture = OpenWrt's name, the file name's end),
#    the binary's ELF class, byte order and machine for that architecture (readelf -h);
#  - the files (/usr/sbin/pixelserv-tls, the procd script, the UCI file as a conffile,
#    sysupgrade's keep.d entry);
#  - postinst and prerm as in an image build (IPKG_INSTROOT): the service is enabled and
#    disabled, and nothing else is written (no CA);
#  - the UCI-to-arguments mapping: the init script's start_service with the packaged
#    defaults (disabled: no command; enabled: exactly the expected command, which its own
#    --check step has accepted under qemu);
#  - a real start from the scratch root under qemu-user: with the UCI file changed as a user
#    would (uci set: listen 127.0.0.1, free ports, ca_dir and leaf_dir inside the scratch
#    root), HTTP and an HTTPS first visit verified against the CA made in ca_dir; the
#    certificate is in leaf_dir and ca_dir holds only the CA; stop, prerm, the CA stays.
# OpenWrt's /lib/functions.sh and /etc/rc.common are in no registry we reach: the stand-ins
# in xc/openwrt/ replace them (config_load evaluates the UCI file as OpenWrt's evaluates
# `uci export`). Needs root only for -u nobody.
#
#   xc/openwrt-test.sh dist/pixelserv-tls_*_{mips_24kc,arm_cortex-a9,x86_64}.ipk
set -u
cd "$(dirname "$0")/.." || exit 1
. xc/ipk-lib.sh
[ $# -gt 0 ] || { echo "usage: $0 IPK..." >&2; exit 2; }

root=""
cleanup() {
	[ -s "$root/.procd/pid" ] && kill "$(cat "$root/.procd/pid")" 2>/dev/null
	[ -n "$root" ] && rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# uci_set OPTION VALUE: what `uci set pixelserv-tls.main.OPTION=VALUE; uci commit` leaves.
uci_set() {
	sed -i "s|^\(\toption $1 \).*|\1'$2'|" "$root/etc/config/pixelserv-tls"
	grep -q "^	option $1 '$2'\$" "$root/etc/config/pixelserv-tls" || die "uci set $1"
}

rc() { # ACTION: /etc/init.d/pixelserv-tls ACTION
	IPKG_INSTROOT=$root UCI_CONFIG_DIR=$root/etc/config PROCD_TEST_DIR=$root/.procd \
		PROCD_TEST_PROG=$root/.procd/prog sh "$root/etc/rc.common" \
		"$root/etc/init.d/pixelserv-tls" "$1"
}

check_files() {
	for f in usr/sbin/pixelserv-tls etc/init.d/pixelserv-tls; do
		[ -x "$root/$f" ] || die "no executable ./$f"
	done
	sh -n "$root/etc/init.d/pixelserv-tls" || die "init script syntax"
	head -n 1 "$root/etc/init.d/pixelserv-tls" | grep -qx '#!/bin/sh /etc/rc.common' ||
		die "init script is not an rc.common script"
	grep -q '^USE_PROCD=1' "$root/etc/init.d/pixelserv-tls" || die "not a procd script"
	[ -s "$root/etc/config/pixelserv-tls" ] || die "no UCI file"
	grep -qx /etc/config/pixelserv-tls "$pkgdir/control/conffiles" ||
		die "the UCI file is not a conffile"
	grep -qx /etc/pixelserv-tls/ "$root/lib/upgrade/keep.d/pixelserv-tls" ||
		die "sysupgrade does not keep /etc/pixelserv-tls"
	[ ! -e "$root/opt" ] || die "an OpenWrt package with /opt"
	echo "ok   files: /usr/sbin/pixelserv-tls, procd /etc/init.d/pixelserv-tls," \
		"/etc/config/pixelserv-tls (conffile), keep.d"
}

# As opkg installs: control files and the file list in /usr/lib/opkg/info; the stand-ins.
install_like_opkg() {
	info=$root/usr/lib/opkg/info
	mkdir -p "$info" "$root/lib" "$root/.procd" || die "mkdir"
	for f in "$pkgdir"/control/*; do cp "$f" "$info/pixelserv-tls.${f##*/}"; done
	(cd "$root" && tar -tzf "$pkgdir/data.tar.gz" | sed -n 's|^\.\(/.*[^/]\)$|\1|p') \
		> "$info/pixelserv-tls.list"
	cp xc/openwrt/functions.sh "$root/lib/functions.sh"
	cp xc/openwrt/rc.common "$root/etc/rc.common"
	# shellcheck disable=SC2086 # $qemu is a command prefix
	printf '#!/bin/sh\nexec %s %s "$@"\n' "$qemu" "$root/usr/sbin/pixelserv-tls" \
		> "$root/.procd/prog"
	chmod +x "$root/.procd/prog"
}

image_build_scripts() {
	before=$(cd "$root" && find . -path ./.procd -prune -o -print | sort)
	IPKG_INSTROOT=$root sh "$info/pixelserv-tls.postinst" "$info/pixelserv-tls.postinst" ||
		die "postinst"
	[ -L "$root/etc/rc.d/S80pixelserv-tls" ] || die "postinst did not enable the service"
	after=$(cd "$root" && find . -path ./.procd -prune -o -print | grep -v '^./etc/rc.d' | sort)
	[ "$before" = "$after" ] || die "postinst wrote more than the rc.d links"
	echo "ok   postinst (image build) enables the service and writes nothing else"
}

# The packaged UCI defaults give exactly this command line; --check accepts it.
uci_defaults() {
	out=$(rc start 2>&1) || die "start with the defaults: $out"
	case $out in *disabled*) ;; *) die "a disabled service said: $out" ;; esac
	[ ! -e "$root/.procd/command" ] || die "a disabled service gave procd a command"
	uci_set enabled 1
	out=$(PROCD_TEST_DRY_RUN=1 rc start 2>&1) || die "start_service refused the defaults: $out"
	got=$(tr '\n' ' ' < "$root/.procd/command")
	want="/usr/sbin/pixelserv-tls -f --log-to stderr -u nobody -z /etc/pixelserv-tls"
	want="$want --leaf-dir /tmp/pixelserv-tls -l 1 -O 120 -T 1200 -p 80 -k 443 192.168.1.2 "
	[ "$got" = "$want" ] || die "UCI defaults gave: $got"
	echo "ok   UCI defaults -> $got(--check passed)"
}

live_start() {
	free_ports
	ca=$root/etc/pixelserv-tls leaves=$root/tmp/pixelserv-tls
	mkdir -p "$root/tmp" && chmod 0755 "$root" "$root/etc" "$root/tmp"
	uci_set listen 127.0.0.1
	uci_set http_port "$p"
	uci_set https_port "$k"
	uci_set ca_dir "$ca"
	uci_set leaf_dir "$leaves"
	uci_set log_level 4
	rc start || die "start"
	i=0
	while :; do
		code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/x.gif") &&
			[ "$code" = 200 ] && break
		i=$((i + 1))
		[ $i -lt 300 ] || { cat "$root/.procd/log"; die "HTTP not answering on $p"; }
		sleep 0.1
	done
	echo "ok   HTTP  GET /x.gif -> 200 (procd's command, under '${qemu:-native}')"
	out=$(curl -sS -m 20 --cacert "$ca/ca.crt" --resolve "a.example.com:$k:127.0.0.1" \
		-o /dev/null -w '%{http_code} %{ssl_verify_result}' "https://a.example.com:$k/x.gif")
	[ "$out" = "200 0" ] || { cat "$root/.procd/log"; die "HTTPS: $out"; }
	[ -s "$leaves/_.example.com" ] || die "no certificate in leaf_dir"
	[ "$(ls "$ca" | tr '\n' ' ')" = "ca.crt ca.key " ] || die "ca_dir holds $(ls "$ca")"
	echo "ok   HTTPS first visit verified; the certificate in leaf_dir, only the CA in ca_dir"
	sums=$(cd "$ca" && sha256sum ca.crt ca.key)
	rc stop
	IPKG_INSTROOT=$root sh "$info/pixelserv-tls.prerm" "$info/pixelserv-tls.prerm" ||
		die "prerm"
	[ ! -e "$root/etc/rc.d/S80pixelserv-tls" ] || die "prerm did not disable the service"
	[ "$(cd "$ca" && sha256sum ca.crt ca.key)" = "$sums" ] || die "the CA changed"
	echo "ok   stopped; prerm disables the service and leaves the CA"
}

for ipk in "$@"; do
	echo "== $ipk"
	root=$(mktemp -d) || die "mktemp"
	unpack_ipk "$ipk" "$root"
	check_arch "$ipk"
	cpu_of "$arch"
	echo "control: Package pixelserv-tls, Version $(field Version), Architecture $arch"
	check_elf "$root/usr/sbin/pixelserv-tls"
	check_files
	install_like_opkg
	image_build_scripts
	uci_defaults
	live_start
	rm -rf "$root"
	root=""
done
echo PASS

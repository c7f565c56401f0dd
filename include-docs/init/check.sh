#!/bin/sh
# Checks for the init scripts in this directory (CI runs this).
# sh -n for the shell scripts; systemd-analyze verify for the unit when available; and, with
# a built binary (PIXELSERV_BIN, else target/debug or target/release), every command line
# the scripts would run is given to `pixelserv-tls --check`, and the scripts' own --check
# step is run: a good configuration goes on to start, a broken one stops with the reason.
set -u
here=$(cd "$(dirname "$0")" && pwd)
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
# The -u user (nobody) must be able to reach the CERT_PATHs made below.
chmod 755 "$tmp"

for f in S80pixelserv-tls openwrt-pixelserv-tls; do
	if sh -n "$here/$f"; then ok "sh -n $f"; else bad "sh -n $f"; fi
done

unit=pixelserv-tls.service
if command -v systemd-analyze >/dev/null 2>&1; then
	# verify wants the binaries to exist: check a copy that points at a stand-in.
	mkdir "$tmp/unit"
	printf '#!/bin/sh\n' > "$tmp/unit/pixelserv-tls"
	chmod +x "$tmp/unit/pixelserv-tls"
	sed "s|^\(ExecStart[A-Za-z]*=\)/usr/local/bin/pixelserv-tls|\1$tmp/unit/pixelserv-tls|" \
		"$here/$unit" > "$tmp/unit/$unit"
	if out=$(systemd-analyze verify --man=no "$tmp/unit/$unit" 2>&1) && [ -z "$out" ]; then
		ok "systemd-analyze verify $unit"
	else
		# Complaints about other units of the host are not ours.
		mine=$(printf '%s\n' "$out" | grep -F "$unit" || true)
		if [ -n "$mine" ]; then
			printf '%s\n' "$mine"; bad "systemd-analyze verify $unit"
		else
			ok "systemd-analyze verify $unit (host warnings ignored)"
		fi
	fi
else
	echo "skip systemd-analyze verify $unit (systemd-analyze not installed)"
fi

bin=${PIXELSERV_BIN:-}
for b in "$here/../../target/debug/pixelserv-tls" "$here/../../target/release/pixelserv-tls"; do
	[ -z "$bin" ] && [ -x "$b" ] && bin=$(cd "$(dirname "$b")" && pwd)/pixelserv-tls
done
if [ -z "$bin" ]; then
	echo "skip command lines (no pixelserv-tls built; set PIXELSERV_BIN)"
	exit $fail
fi

# systemd: ExecStartPre and ExecStart, with the example options of the unit's header and a
# scratch CERT_PATH (the last -z wins).
grep -E '^ExecStart(Pre)?=' "$here/$unit" | while IFS='=' read -r key cmd; do
	args=$(printf '%s\n' "$cmd" | sed 's|^/usr/local/bin/pixelserv-tls||; s|\$PIXELSERV_OPTS|-l 2 127.0.0.1|')
	# shellcheck disable=SC2086 # a word list
	if out=$("$bin" --check $args -z "$tmp/systemd" 2>&1); then
		ok "$unit $key accepted by --check"
	else
		printf '%s\n' "$out"; echo "FAIL $unit $key"; exit 1
	fi
done || fail=1

# OpenWrt: start_service with procd stubbed and its UCI file (the packaged defaults, enabled,
# with scratch directories and 127.0.0.1) read by the stand-in of OpenWrt's functions.sh
# (xc/openwrt/); its --check must pass, and the command it hands procd must be accepted too.
# A broken setting is refused with the reason.
mkdir "$tmp/uci"
openwrt() { # SED-SCRIPT: start_service's output with the UCI file changed by it
	sed -e "s|option enabled .*|option enabled '1'|" \
		-e "s|option listen .*|option listen '127.0.0.1'|" \
		-e "s|option ca_dir .*|option ca_dir '$tmp/openwrt-ca'|" \
		-e "s|option leaf_dir .*|option leaf_dir '$tmp/openwrt-leaves'|" -e "$1" \
		"$here/openwrt-pixelserv-tls.config" > "$tmp/uci/pixelserv-tls"
	(
		procd_open_instance() { :; }
		procd_close_instance() { :; }
		procd_set_param() {
			[ "$1" = command ] || return 0
			shift 2
			"$bin" --check "$@" >/dev/null
			echo "command checked: $?"
		}
		# shellcheck disable=SC1091
		. "$here/../../xc/openwrt/functions.sh"
		# shellcheck disable=SC1091
		. "$here/openwrt-pixelserv-tls"
		PROG=$bin UCI_CONFIG_DIR=$tmp/uci
		start_service 2>&1
		echo "start_service: $?"
	)
}
out=$(openwrt "")
case "$out" in
*"command checked: 0"*"start_service: 0"*) ok "openwrt-pixelserv-tls start_service" ;;
*) printf '%s\n' "$out"; bad "openwrt-pixelserv-tls start_service" ;;
esac
out=$(openwrt "s|option http_port .*|option http_port '0'|")
case "$out" in
*"command checked"*) printf '%s\n' "$out"; bad "openwrt-pixelserv-tls started a broken configuration" ;;
*"option -p"*"start_service: 1") ok "openwrt-pixelserv-tls refuses a broken configuration" ;;
*) printf '%s\n' "$out"; bad "openwrt-pixelserv-tls broken configuration" ;;
esac

# Entware: the script with rc.func stubbed and the binary on PATH; a good configuration
# reaches rc.func's start, a broken one stops before it, with the reason.
mkdir "$tmp/bin"
ln -s "$bin" "$tmp/bin/pixelserv-tls"
printf 'echo "rc.func $1"\n' > "$tmp/rc.func"
s80() {
	sed -e "s|^ARGS=.*|ARGS=\"$1 -z $tmp/entware 127.0.0.1\"|" \
		-e "s|^PATH=|PATH=$tmp/bin:|" \
		-e "s|/opt/etc/init.d/rc.func|$tmp/rc.func|" \
		"$here/S80pixelserv-tls" > "$tmp/S80"
	sh "$tmp/S80" start 2>&1
	echo "exit $?"
}
case "$(s80 "")" in
*"rc.func start"*"exit 0") ok "S80pixelserv-tls start reaches rc.func" ;;
*) s80 ""; bad "S80pixelserv-tls start" ;;
esac
out=$(s80 "-p 0")
case "$out" in
*"rc.func"*) printf '%s\n' "$out"; bad "S80pixelserv-tls started a broken configuration" ;;
*"option -p"*"exit 1") ok "S80pixelserv-tls refuses a broken configuration" ;;
*) printf '%s\n' "$out"; bad "S80pixelserv-tls broken configuration" ;;
esac
exit $fail

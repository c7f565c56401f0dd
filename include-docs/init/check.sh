#!/bin/sh
# Syntax checks for the init scripts in this directory (CI runs this).
# sh -n for the shell scripts; systemd-analyze verify for the unit when available.
set -u
here=$(cd "$(dirname "$0")" && pwd)
fail=0

for f in S80pixelserv-tls openwrt-pixelserv-tls; do
	if sh -n "$here/$f"; then echo "ok   sh -n $f"; else echo "FAIL sh -n $f"; fail=1; fi
done

unit=pixelserv-tls.service
if command -v systemd-analyze >/dev/null 2>&1; then
	# verify wants ExecStart's binary to exist: check a copy that points at a stand-in.
	tmp=$(mktemp -d) || exit 1
	trap 'rm -rf "$tmp"' EXIT
	printf '#!/bin/sh\n' > "$tmp/pixelserv-tls"
	chmod +x "$tmp/pixelserv-tls"
	sed "s|^ExecStart=/usr/local/bin/pixelserv-tls|ExecStart=$tmp/pixelserv-tls|" \
		"$here/$unit" > "$tmp/$unit"
	if out=$(systemd-analyze verify --man=no "$tmp/$unit" 2>&1) && [ -z "$out" ]; then
		echo "ok   systemd-analyze verify $unit"
	else
		# Complaints about other units of the host are not ours.
		mine=$(printf '%s\n' "$out" | grep -F "$unit" || true)
		if [ -n "$mine" ]; then
			printf '%s\n' "$mine"; echo "FAIL systemd-analyze verify $unit"; fail=1
		else
			echo "ok   systemd-analyze verify $unit (host warnings ignored)"
		fi
	fi
else
	echo "skip systemd-analyze verify $unit (systemd-analyze not installed)"
fi
exit $fail

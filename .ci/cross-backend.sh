#!/bin/sh
# An OpenSSL build and an AWS-LC build sharing one --ticket-keys file resume each other's
# sessions: for TLS 1.3 and TLS 1.2, a session saved by `openssl s_client -sess_out`
# from one binary is offered with -sess_in to the other, both directions, and must be
# "Reused" with the GET answered. A third instance with other keys must not resume it.
#
#   .ci/cross-backend.sh BIN_OPENSSL BIN_AWSLC
#     e.g. target/debug/pixelserv-tls target/aws-lc/debug/pixelserv-tls
set -u
cd "$(dirname "$0")/.." || exit 1
[ $# -eq 2 ] || { echo "usage: $0 BIN_OPENSSL BIN_AWSLC" >&2; exit 2; }

die() { echo "FAIL: $*" >&2; exit 1; }
for b in "$1" "$2"; do [ -x "$b" ] || die "no binary $b"; done
# AWS-LC's version string is in the AWS-LC build only.
grep -q AWS-LC "$1" && die "$1 is an AWS-LC build"
grep -q AWS-LC "$2" || die "$2 is not an AWS-LC build"

dir=$(mktemp -d) || die "mktemp"
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
head -c 80 /dev/urandom >"$dir/ticket.keys"
head -c 80 /dev/urandom >"$dir/other.keys"

free() {
	curl -s -m 1 "http://127.0.0.1:$1/" >/dev/null 2>&1
	[ $? -eq 7 ]
}

# start NAME BIN KEYS: runs BIN on two free loopback ports; sets $port (HTTPS).
start() {
	p=0
	for _ in 1 2 3 4 5 6 7 8; do
		# Below the ephemeral range, as in static-check.sh.
		p=$(( 10000 + $(od -An -N2 -tu2 /dev/urandom) % 22000 ))
		free $p && free $((p + 1)) && break
		p=0
	done
	[ $p != 0 ] || die "no free port pair"
	mkdir -p "$dir/$1"
	"$2" -f -u "$(id -un)" -l 4 -p $p -k $((p + 1)) -z "$dir/$1" --ticket-keys "$3" \
		127.0.0.1 >"$dir/$1.log" 2>&1 &
	pids="$pids $!"
	i=0
	until curl -s -m 2 -o /dev/null "http://127.0.0.1:$p/x.gif"; do
		kill -0 $! 2>/dev/null || { cat "$dir/$1.log"; die "$1 exited at startup"; }
		i=$((i + 1))
		[ $i -lt 200 ] || die "$1 not answering on port $p"
		sleep 0.1
	done
	port=$((p + 1))
}

start openssl "$1" "$dir/ticket.keys"
ossl=$port
start aws-lc "$2" "$dir/ticket.keys"
awslc=$port
start other "$2" "$dir/other.keys"
other=$port

# client PORT VERSION SESSION-OPTION FILE: one GET, s_client's output on stdout.
client() {
	printf 'GET /x.gif HTTP/1.1\r\nHost: t.example.com\r\nConnection: close\r\n\r\n' |
		openssl s_client -connect "127.0.0.1:$1" -servername t.example.com "-$2" \
			"$3" "$4" -ign_eof 2>&1
}

fail=0
for v in tls1_3 tls1_2; do
	for pair in "openssl:$ossl:aws-lc:$awslc" "aws-lc:$awslc:openssl:$ossl"; do
		IFS=: read -r from fport to tport <<-EOF
			$pair
		EOF
		s="$dir/sess-$v-$from"
		out=$(client "$fport" $v -sess_out "$s")
		if ! printf '%s' "$out" | grep -q 'HTTP/1.1 200 OK' || [ ! -s "$s" ]; then
			printf '%s\n' "$out" | tail -n 30
			die "$v: no answer or no session from $from"
		fi
		out=$(client "$tport" $v -sess_in "$s")
		line=$(printf '%s\n' "$out" | grep -E '^(New|Reused), TLS' | head -n 1)
		if printf '%s' "$line" | grep -q '^Reused' &&
			printf '%s' "$out" | grep -q 'HTTP/1.1 200 OK'; then
			echo "ok   $v: $from's session resumed by $to: $line; GET answered"
		else
			echo "FAIL $v: $from's session offered to $to: ${line:-no handshake}"
			fail=1
		fi
	done
	# Control: other keys, no resumption (a full handshake, still answered).
	out=$(client "$other" $v -sess_in "$dir/sess-$v-openssl")
	line=$(printf '%s\n' "$out" | grep -E '^(New|Reused), TLS' | head -n 1)
	if printf '%s' "$line" | grep -q '^New' && printf '%s' "$out" | grep -q 'HTTP/1.1 200 OK'; then
		echo "ok   $v: an instance with other keys makes a full handshake: $line"
	else
		echo "FAIL $v: instance with other keys: ${line:-no handshake}"
		fail=1
	fi
done
[ $fail = 0 ] || { tail -n 5 "$dir"/*.log; exit 1; }
echo "PASS"

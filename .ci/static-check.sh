#!/bin/sh
# Builds the static x86-64 binary (make -f Makefile.xc static), checks that it is static,
# then runs it on loopback: one GIF over HTTP, one over HTTPS for a new name verified
# against the CA it created. Non-zero exit on any failure.
#
#   .ci/static-check.sh [--no-build] [--run "WRAPPER ARGS"] [--default-certs DIR] [BINARY]
#     --no-build       test BINARY as it is (default dist/pixelserv-tls-x86_64-static)
#     --run            prefix for running the binary, e.g. "qemu-arm -cpu cortex-a9"
#     --default-certs  start without -z: DIR is where the binary's default CERT_PATH is
#                      seen from here (xc/ipk-test.sh mounts a scratch root's /opt)
#     --cert-path Z    with --default-certs: start with -z Z (as the binary sees it)
#     --suite NAME     the TLS 1.3 suite the server must choose for a client that prefers
#                      AES-128-GCM: TLS_CHACHA20_POLY1305_SHA256 on a CPU without AES
#                      instructions (PERFORMANCE.md), TLS_AES_128_GCM_SHA256 with them
set -u
cd "$(dirname "$0")/.." || exit 1

build=1
run=""
certs=""
zpath=""
suite=""
while [ $# -gt 0 ]; do
	case $1 in
	--no-build) build=0 ;;
	--run) shift; run=${1:-} ;;
	--default-certs) shift; certs=${1:-} ;;
	--cert-path) shift; zpath=${1:-} ;;
	--suite) shift; suite=${1:-} ;;
	-*) echo "unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
	shift
done
bin=${1:-dist/pixelserv-tls-x86_64-static}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
die() { echo "FAIL: $*" >&2; exit 1; }

if [ $build = 1 ]; then
	t=$(now)
	make -f Makefile.xc static || die "build"
	echo "build: $(since "$t") s"
fi
[ -x "$bin" ] || die "no binary $bin"
kind=$(file -b "$bin")
echo "file: $kind"
case $kind in
*"statically linked"* | *"static-pie linked"*) ;;
*) die "$bin is not statically linked" ;;
esac
echo "size: $(wc -c < "$bin") bytes"

dir=$(mktemp -d) || die "mktemp"
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Two free high ports: try a few random pairs (curl exit 7: connection refused).
free() {
	curl -s -m 1 "http://127.0.0.1:$1/" >/dev/null 2>&1
	[ $? -eq 7 ]
}
p=0
for _ in 1 2 3 4 5 6 7 8; do
	# Below the kernel's ephemeral range (32768-60999 by default): a port there may be bound by
	# some client's connection, which the probe cannot see, and the bind then fails.
	p=$(( 10000 + $(od -An -N2 -tu2 /dev/urandom) % 22000 ))
	k=$(( p + 1 ))
	free $p && free $k && break
	p=0
done
[ $p != 0 ] || die "no free port pair"

if [ -n "$certs" ]; then
	set -- ${zpath:+-z "$zpath"}
else
	certs=$dir/certs
	mkdir -p "$certs"
	set -- -z "$certs"
fi
t=$(now)
# shellcheck disable=SC2086 # $run is a command prefix
$run "$bin" -f -u "$(id -un)" -l 4 -p "$p" -k "$k" "$@" 127.0.0.1 \
	>"$dir/out.log" 2>&1 &
pid=$!

# Ready when HTTP answers (the CA is created first; slow under qemu).
code=""
i=0
while [ $i -lt 300 ]; do
	kill -0 "$pid" 2>/dev/null || { cat "$dir/out.log"; pid=""; die "server exited at startup"; }
	code=$(curl -s -m 2 -o "$dir/http.gif" -w '%{http_code}' "http://127.0.0.1:$p/x.gif") && break
	sleep 0.1
	i=$((i + 1))
done
[ "$code" = 200 ] || die "HTTP not answering on port $p (last code '$code')"
echo "startup until HTTP answers: $(since "$t") s (ports $p/$k, CA in $certs)"
n=$(wc -c < "$dir/http.gif")
[ "$n" = 42 ] || die "HTTP GIF is $n bytes"
echo "ok   HTTP  GET /x.gif -> 200, $n bytes"

[ -s "$certs/ca.crt" ] || die "no ca.crt in $certs"
t=$(now)
tries=0
while :; do
	tries=$((tries + 1))
	out=$(curl -sS -m 20 --cacert "$certs/ca.crt" \
		--resolve "a.example.com:$k:127.0.0.1" -o "$dir/https.gif" \
		-w '%{http_code} %{ssl_verify_result}' "https://a.example.com:$k/x.gif" 2>&1) && break
	[ $tries -lt 3 ] || { echo "$out"; die "HTTPS fetch failed"; }
	sleep 0.5
done
n=$(wc -c < "$dir/https.gif")
[ "$out" = "200 0" ] && [ "$n" = 42 ] || die "HTTPS: '$out', $n bytes"
echo "ok   HTTPS GET https://a.example.com:$k/x.gif -> 200, verified, $n bytes," \
	"$(since "$t") s, attempts: $tries"

if [ -n "$suite" ]; then
	out=$(printf 'GET /x.gif HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n' |
		openssl s_client -connect "127.0.0.1:$k" -servername a.example.com -tls1_3 \
			-ciphersuites TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256 -ign_eof 2>&1)
	got=$(printf '%s\n' "$out" | sed -n 's/^.*Cipher is \([A-Z0-9_]*\).*$/\1/p' | head -n 1)
	[ "$got" = "$suite" ] || { printf '%s\n' "$out" | tail -n 20; die "TLS 1.3 suite '$got', expected $suite"; }
	echo "ok   TLS 1.3 suite for a client that prefers AES-128-GCM: $got"
fi

kill "$pid" || die "kill"
wait "$pid"
rc=$?
pid=""
echo "stopped (exit status $rc)"
echo "PASS"

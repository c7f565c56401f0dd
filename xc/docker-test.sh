#!/bin/sh
# Builds the Dockerfile's image with buildah (Debian's package; no container engine runs
# here) and runs what is in it: in a private mount namespace the image's /etc/passwd is
# mounted over the host's and a root-owned scratch directory over the volume /var/cache, then the
# image's ENTRYPOINT (binary from the image's root) is started as the container would,
# with no -u (so it drops to the image's nobody), plus test ports and address. Then
# .ci/static-check.sh checks HTTP and an HTTPS first visit verified against the CA made in
# the volume. Needs root.
#
#   xc/docker-test.sh BINARY ["QEMU PREFIX"]     e.g. dist/pixelserv-tls-aarch64-static qemu-aarch64
set -u
cd "$(dirname "$0")/.." || exit 1
die() { echo "FAIL: $*" >&2; exit 1; }
bin=${1:?usage: $0 BINARY [QEMU]}
qemu=${2:-}
command -v buildah >/dev/null || die "no buildah (apt-get install --no-install-recommends buildah)"
b() { buildah --storage-driver vfs "$@"; }

tag=localhost/pixelserv-tls:test
b bud -q --build-arg BINARY="$bin" -t "$tag" . >/dev/null || die "buildah bud"
ctr=$(b from "$tag") || die "buildah from"
vol=$(mktemp -d)
cleanup() { b umount "$ctr" >/dev/null 2>&1; b rm "$ctr" >/dev/null 2>&1; b rmi "$tag" >/dev/null 2>&1; rm -rf "$vol"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
mnt=$(b mount "$ctr") || die "buildah mount"
entry=$(b inspect --format '{{.OCIv1.Config.Entrypoint}}' "$ctr")
volumes=$(b inspect --format '{{.OCIv1.Config.Volumes}}' "$ctr")
echo "image: $(ls "$mnt" | tr '\n' ' ')entrypoint $entry, volumes $volumes"
[ "$entry" = '[/pixelserv-tls -f -z /var/cache/pixelserv]' ] || die "entrypoint $entry"
case $volumes in *'/var/cache:'*) ;; *) die "no volume /var/cache: $volumes" ;; esac
cmp -s "$mnt/pixelserv-tls" "$bin" || die "the image's binary is not $bin"
grep -q '^nobody:' "$mnt/etc/passwd" || die "no nobody in the image's /etc/passwd"

# The entrypoint's own -z, with the image's root prefixed for the binary path.
cat > "$vol/run" <<RUN
#!/bin/sh
mount --bind "$mnt/etc/passwd" /etc/passwd && mount --bind "$mnt/etc/group" /etc/group &&
	mount --bind "$vol/cache" /var/cache || exit 1
# static-check passes -f -u USER ...: drop its -u so the image's default (nobody) applies.
bin=\$1; shift
[ "\$1" = -f ] && shift
[ "\$1" = -u ] && shift 2
exec $qemu "$mnt/pixelserv-tls" -f -z /var/cache/pixelserv "\$@"
RUN
mkdir -p "$vol/cache"
sh .ci/static-check.sh --no-build --run "unshare -m --propagation private sh $vol/run" \
	--default-certs "$vol/cache/pixelserv" "$bin" || die "the image's entrypoint"
[ "$(stat -c %u:%u "$vol/cache/pixelserv" "$vol/cache/pixelserv/ca.crt" | tr '\n' ' ')" = "65534:65534 65534:65534 " ] ||
	die "CERT_PATH is not the image's nobody's: $(ls -lna "$vol/cache/pixelserv")"
ls "$vol/cache/pixelserv" | grep -q example.com || die "no certificate saved in the volume"
echo "ok   CA and the new certificate saved in the volume's pixelserv/, owned by the image's nobody"
echo PASS

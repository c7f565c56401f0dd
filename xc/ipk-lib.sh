# Shared by xc/ipk-test.sh (Entware) and xc/openwrt-test.sh (OpenWrt); sourced, POSIX sh.

die() { echo "FAIL: $*" >&2; exit 1; }

# unpack_ipk IPK ROOT: checks the outer archive as OpenWrt's ipkg-build makes it (a gzipped
# tar of ./debian-binary 2.0, ./data.tar.gz, ./control.tar.gz), unpacks data.tar.gz at ROOT
# as opkg does and the control files into ROOT/.ipk/control.
unpack_ipk() {
	[ -s "$1" ] || die "no $1"
	pkgdir=$2/.ipk
	mkdir -p "$pkgdir/control" || die "mkdir"
	tar -xzf "$1" -C "$pkgdir" || die "$1 is not a gzipped tar"
	members=$(tar -tzf "$1" | tr '\n' ' ')
	[ "$members" = "./debian-binary ./data.tar.gz ./control.tar.gz " ] ||
		die "members: $members"
	[ "$(cat "$pkgdir/debian-binary")" = 2.0 ] || die "debian-binary"
	tar -xzf "$pkgdir/control.tar.gz" -C "$pkgdir/control" || die "control.tar.gz"
	tar -xzf "$pkgdir/data.tar.gz" -C "$2" || die "data.tar.gz"
}

# field NAME: a field of the unpacked control file.
field() { sed -n "s/^$1: //p" "$pkgdir/control/control"; }

# check_arch IPK: Architecture must be the feed's name, which ends the file name.
check_arch() {
	arch=$(field Architecture)
	case ${1##*/} in *"_$arch.ipk") ;; *) die "Architecture $arch does not match the file name" ;; esac
	[ "$(field Package)" = pixelserv-tls ] || die "Package: $(field Package)"
}

# cpu_of ARCH: the CPU of an Entware feed or an OpenWrt architecture, and with it
# $qemu (how to run its binaries here) and $elf (readelf -h's class, byte order, machine).
cpu_of() {
	case $1 in
	# System calls newer than 2.6.36 refused as that kernel would (xc/old-kernel, issue 18).
	armv7-2.6) qemu="$PWD/xc/old-kernel 2.6.36 qemu-arm -cpu cortex-a9 -r 2.6.36" ;;
	armv7-3.2 | arm_cortex-a9 | arm_cortex-a9_vfpv3-d16) qemu="qemu-arm -cpu cortex-a9" ;;
	aarch64-3.10 | aarch64_cortex-a53 | aarch64_generic) qemu="qemu-aarch64" ;;
	mipsel-3.4 | mipsel_24kc) qemu="qemu-mipsel -cpu 24Kc" ;;
	mips-3.4 | mips_24kc) qemu="qemu-mips -cpu 24Kc" ;;
	x64-3.2 | x86_64) qemu="" ;;
	*) die "unknown Architecture $1" ;;
	esac
	case $1 in
	arm*) elf="ELF32 little ARM" ;;
	aarch64*) elf="ELF64 little AArch64" ;;
	mipsel*) elf="ELF32 little MIPS R3000" ;;
	mips*) elf="ELF32 big MIPS R3000" ;;
	x*) elf="ELF64 little Advanced Micro Devices X86-64" ;;
	esac
}

# check_elf FILE: a static executable of the CPU cpu_of chose.
check_elf() {
	got=$(readelf -h "$1" | sed -n \
		-e 's/^ *Class: *//p' \
		-e 's/^ *Data: *.*complement, \([a-z]*\) endian/\1/p' \
		-e 's/^ *Machine: *//p' | tr '\n' ' ')
	[ "$got" = "$elf " ] || die "$1: readelf -h says '$got', $arch needs '$elf'"
	case $(file -b "$1") in
	*"statically linked"*) ;;
	*) die "$1 is not statically linked: $(file -b "$1")" ;;
	esac
	echo "ok   ELF $elf, static ($arch)"
}

# free_ports: $p and $k, two free loopback ports (curl's exit 7: connection refused).
free_ports() {
	p=0
	for _ in 1 2 3 4 5 6 7 8; do
		# Below the kernel's ephemeral range (32768-60999 by default): a port there may be bound by
		# some client's connection, which the probe cannot see, and the bind then fails.
		p=$(( 10000 + $(od -An -N2 -tu2 /dev/urandom) % 22000 ))
		k=$(( p + 1 ))
		curl -s -m 1 "http://127.0.0.1:$p/" >/dev/null 2>&1
		a=$?
		curl -s -m 1 "http://127.0.0.1:$k/" >/dev/null 2>&1
		b=$?
		[ $a = 7 ] && [ $b = 7 ] && return 0
	done
	die "no free port pair"
}

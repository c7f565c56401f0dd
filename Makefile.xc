# Static and cross builds of pixelserv-tls (router builds). See include-docs/BUILD-ROUTER.md.
#
#   make -f Makefile.xc setup         nightly rust-src (rustup), Zig (PyPI), qemu-user (apt)
#   make -f Makefile.xc static        x86-64 static musl, AWS-LC (after setup)
#   make -f Makefile.xc armv7 aarch64 mipsel mips   static musl router builds (after setup):
#                                     AWS-LC, vendored minimal OpenSSL on armv7
#   make -f Makefile.xc TLS=aws-lc armv7   (or TLS=openssl static) the other TLS library
#   make -f Makefile.xc smoke-armv7   (-aarch64, -mipsel, -mips, -x86_64) HTTP + HTTPS test
#   make -f Makefile.xc smoke-old-armv7 (-aarch64, -mipsel, -mips) the same on the feed's old kernel
#   make -f Makefile.xc smoke-novfp-armv7  the same on a Cortex-A9 without VFP/NEON (BCM4708)
#   make -f Makefile.xc vm-armv7      an emulated 256 MB Cortex-A9 router: memory table, flood
#   make -f Makefile.xc vm-aarch64    the same on a 256 MB Cortex-A53 (-M virt)
#   make -f Makefile.xc ipk ipk-test  6 Entware + 7 OpenWrt packages; install each into a
#                                     scratch root, run it from there
#   make -f Makefile.xc release       dist/: binaries, .ipk, tarballs, SHA256SUMS
#   make -f Makefile.xc release-check release + every test + size + docker-test + measure
#   make -f Makefile.xc msrv-check    cargo check with Debian's rustc 1.85 (apt only)
#   make -f Makefile.xc armv7-smoke   armv7 gnueabihf via Debian's rustc 1.85, qemu test
#   make -f Makefile.xc size          size of every binary in dist/ (router budgets)
#   make -f Makefile.xc install       PREFIX=/usr/local DESTDIR=
#
# Every build leaves a stripped binary dist/pixelserv-tls-<name>. Only registries are
# needed: crates.io for sources (OpenSSL comes from the openssl-src crate, AWS-LC from
# aws-lc-sys), PyPI for Zig, rustup for nightly's rust-src, apt for qemu (and for AWS-LC's
# cmake and libclang). After `cargo fetch` the `static` target also
# works with CARGO_FLAGS="--locked --offline".

CARGO       ?= cargo
NIGHTLY     ?= nightly
CARGO_HOME_DIR ?= $(or $(CARGO_HOME),$(HOME)/.cargo)
CARGO_FLAGS ?= --locked
# release: opt-level 3. release-small (Cargo.toml) is opt-level "s"; see the comment there.
PROFILE     ?= release-small
PREFIX      ?= /usr/local
DESTDIR     ?=
BIN         := pixelserv-tls
DIST        := dist
XCDIR       := $(CURDIR)/target/xc
# Toolchains that are not ours (Zig from PyPI, Debian rustc-web) live here.
TOOLS       ?= $(CURDIR)/target/xc-tools

# --- Minimal OpenSSL --------------------------------------------------------------------
# What the server needs: TLS 1.0-1.3; ECDHE X25519/P-256/P-384; AES-GCM, AES-CBC,
# ChaCha20-Poly1305; RSA, ECDSA and Ed25519/Ed448 keys (CA and leaves); SHA-1/256/384 and
# MD5 (TLS 1.0/1.1 PRF); DES and AES for encrypted ca.key files (PEM and PKCS#8/PBKDF2);
# error strings for the log. Everything else goes, also the legacy provider (single DES,
# PBKDF1: nothing the server loads), TLS's deprecated curves, the integrity-only TLS 1.3
# suites and the thread pool (Argon2's, gone too). openssl-src has no hook for extra
# Configure options, so xc/openssl-perl (given as PERL) appends them.
OPENSSL_NO := no-engine no-dso no-srp no-psk no-gost no-idea no-seed no-camellia no-aria \
	no-sm2 no-sm2-precomp no-sm3 no-sm4 no-whirlpool no-rmd160 no-mdc2 no-md4 no-rc2 no-rc4 \
	no-bf no-cast no-dsa no-dh no-siphash no-scrypt no-argon2 no-blake2 no-cmac no-ocb \
	no-siv no-cms no-ts no-ocsp no-ct no-cmp no-http no-rfc3779 no-srtp no-sctp no-dtls \
	no-ssl3 no-comp no-ec2m no-quic no-ml-kem no-ml-dsa no-slh-dsa no-ssl-trace \
	no-ui-console no-autoload-config no-padlockeng no-afalgeng no-uplink no-filenames \
	no-docs no-apps no-legacy no-tls-deprecated-ec no-integrity-only-ciphers no-thread-pool
OPENSSL_CFLAGS := -Os -fno-asynchronous-unwind-tables -fno-unwind-tables
export XC_OPENSSL_OPTS := $(OPENSSL_NO) $(OPENSSL_CFLAGS)
export XC_NO_AVX512_GCM := 1
# Per-connection memory: see xc/openssl-perl.
export XC_SSL_MAX_PIPELINES := 1
export XC_RELEASE_HANDSHAKE := 1
export PERL := $(CURDIR)/xc/openssl-perl
unexport OPENSSL_SRC_PERL OPENSSL_DIR OPENSSL_NO_VENDOR

# panic=abort makes unwind tables dead weight for our own code. Source paths in panic
# locations are shortened (std's rust-src, the crate registry, this tree): shorter strings,
# and no build machine's paths in the binary.
RUSTFLAGS_COMMON := -C force-unwind-tables=no \
	--remap-path-prefix=$(CURDIR)=. \
	--remap-path-prefix=$(shell rustc +$(NIGHTLY) --print sysroot 2>/dev/null)/lib/rustlib/src/rust=/rust \
	--remap-path-prefix=$(CARGO_HOME_DIR)/registry/src=/crates
# Non-PIE: a static-pie carries ~440 KB of relocations; nothing here needs ASLR of the image.
RUSTFLAGS_STATIC := -C target-feature=+crt-static -C relocation-model=static $(RUSTFLAGS_COMMON)

# $(call xbuild,TRIPLE,DIST-NAME,EXTRA-RUSTFLAGS,EXTRA-CARGO-ARGS[,FEATURES])
define xbuild
	RUSTFLAGS="$(RUSTFLAGS_STATIC) $(3)" $(CARGO) $(4) build $(CARGO_FLAGS) --profile $(PROFILE) \
		--features $(or $(5),vendored) --target $(1) --target-dir $(XCDIR) --bin $(BIN)
	mkdir -p $(DIST)
	cp $(XCDIR)/$(1)/$(PROFILE)/$(BIN) $(DIST)/$(BIN)-$(2)
endef

.PHONY: all static armv7 aarch64 mipsel mips routers setup setup-apt awslc-deps armv7-smoke msrv-check size install clean \
	ipk ipk-files ipk-test release release-check measure docker-test smoke-novfp-armv7 vm-armv7 vm-armv7-boot \
	vm-aarch64 vm-aarch64-boot

all: static

# --- Router builds: static musl, registries only ----------------------------------------
# Rust: nightly with rust-src builds std for the target (-Z build-std), so no prebuilt
# rust-std download is needed and tier-3 mipsel works the same way as the others.
# C compiler and linker: Zig from PyPI (`ziglang`), which carries musl 1.2.5 and builds
# it for each target itself; xc/zig-tool adapts the command lines (see there).
#
# Musl >= 1.2 has a 64-bit time_t on 32-bit CPUs, and Rust's libc crate assumes the old
# 32-bit one unless built with --cfg libc_unstable_musl_v1_2. Without it every time_t that
# crosses into OpenSSL (ASN1_TIME_set, X509_time_adj) is read as garbage and making the
# CA fails with "ASN1_TIME_adj: error getting time". The cfg is a RUSTFLAG, not libc's
# old RUST_LIBC_UNSTABLE_MUSL_V1_2_3 variable, whose change cargo never noticed
# (libc's build script did not ask to be re-run for it).
#
# Soft-float on armv7 and mipsel on purpose: Broadcom ARM router kernels (Asuswrt,
# Cortex-A9 without NEON) are built without VFP support, so code with VFP or NEON
# instructions would die with SIGILL there (Entware's armv7sf userland is soft-float too);
# MIPS router CPUs (24Kc/74Kc) have no FPU. OpenSSL's NEON code is only used on a CPU that
# reports NEON at run time.
#
# Router builds default CERT_PATH to Entware's /opt/var/cache/pixelserv (build.rs).
ZIG_VERSION    := 0.15.2
ZIG            ?= $(TOOLS)/pip/ziglang/zig
ROUTER_CERT_PATH := /opt/var/cache/pixelserv
FHS_CERT_PATH    := /var/cache/pixelserv
ARMV7_TARGET   := armv7-unknown-linux-musleabi
AARCH64_TARGET := aarch64-unknown-linux-musl
MIPSEL_TARGET  := mipsel-unknown-linux-musl
MIPS_TARGET    := mips-unknown-linux-musl
X86_64_TARGET  := x86_64-unknown-linux-musl
# -Z location-detail=none (nightly, like build-std below) leaves file:line:column out of
# panic messages, the message itself stays: 14 kB less on armv7 (2,504,772 -> 2,490,500
# bytes), which pays for the setup page (issue 20). Not for the Debian-rustc builds (stable).
ROUTER_RUSTFLAGS := -C link-self-contained=no --cfg libc_unstable_musl_v1_2 -Z location-detail=none
# std without its default "backtrace" feature (symbolizing a backtrace needs addr2line,
# gimli, object and miniz_oxide, and with panic=abort a panic message is all a daemon's
# log gets anyway) and with "optimize_for_size" (smaller sort and formatting code).
ROUTER_BUILD_STD := -Z build-std=std,panic_abort -Z build-std-features=optimize_for_size

# --- AWS-LC instead of OpenSSL (TLS=aws-lc) ----------------------------------------------
# Any static build takes TLS=aws-lc (cargo feature aws-lc instead of vendored); without it
# each CPU's TLS_<cpu> below decides. openssl-sys turns on aws-lc-sys's `ssl` feature, and
# with it aws-lc-sys builds with CMake (its cc-only builder has no libssl) and generates its
# bindings with bindgen (libclang): `awslc-deps` installs cmake, clang and libclang-dev.
#  - C and C++ compiler: Zig (xc/zig-cc, xc/zig-cxx: AWS-LC's libssl is C++); archiver
#    Zig's too, which CMake finds as xc/zig-llvm-ar (see xc/zig-tool).
#  - Source paths in AWS-LC's error and assert strings: /crates/..., as in RUSTFLAGS_COMMON
#    (aws-lc-sys shortens them for its C files, not for libssl's C++).
#  - bindgen: the host's libclang with the target's musl headers, Zig's (-nostdlibinc
#    keeps libclang's own stddef.h and the like, drops the host's /usr/include).
#  - Size: CMake builds MinSizeRel (-Os) for profile release-small (opt-level s or z).
#  - No CPU Jitter Entropy (AWS_LC_SYS_NO_JITTER_ENTROPY): AWS-LC then seeds its DRBG from
#    the kernel alone (getrandom, else /dev/urandom), as OpenSSL does. Jitter's second
#    source cost every process 0.3-0.7 s at start on x86-64 (its C is -O0 by design),
#    2.6 s under qemu-aarch64, and 170 KB. AWSLC_JITTER=1 keeps it.
TLS ?=
AWSLC_JITTER ?=
TLS_x86_64  := aws-lc
TLS_aarch64 := aws-lc
TLS_armv7   := openssl
TLS_mipsel  := aws-lc
TLS_mips    := aws-lc
ZIG_INCLUDE = $(dir $(ZIG))lib/libc/include
# Zig's header directories per Zig CPU name: <musl-dir> <linux-any-dir>.
ZIG_HDRS_x86_64  := x86_64-linux-musl x86-linux-any
ZIG_HDRS_aarch64 := aarch64-linux-musl aarch64-linux-any
ZIG_HDRS_arm     := arm-linux-musl arm-linux-any
ZIG_HDRS_mipsel  := mips-linux-musl mips-linux-any
ZIG_HDRS_mips    := mips-linux-musl mips-linux-any
# $(call awslc_env,TRIPLE,ZIG-TARGET)
awslc_env = CXX_$(subst -,_,$(1))=$(CURDIR)/xc/zig-cxx \
	$(if $(filter 1,$(AWSLC_JITTER)),,AWS_LC_SYS_NO_JITTER_ENTROPY=1) \
	XC_ZIG_EXTRA_CFLAGS="-ffile-prefix-map=$(CARGO_HOME_DIR)/registry/src=/crates" \
	BINDGEN_EXTRA_CLANG_ARGS_$(subst -,_,$(1))="-nostdlibinc \
		$(foreach d,$(firstword $(ZIG_HDRS_$(firstword $(subst -, ,$(2))))) generic-musl \
		$(lastword $(ZIG_HDRS_$(firstword $(subst -, ,$(2))))) any-linux-any,-isystem $(ZIG_INCLUDE)/$(d))"

# $(call router,TRIPLE,TRIPLE_IN_UPPER_CASE,ZIG-TARGET,ZIG-CPU-FLAGS,DIST-NAME,RUSTFLAGS[,CERT_PATH])
# The TLS library: $(TLS), else TLS_<cpu> (DIST-NAME is <cpu>-static).
define router
	[ -x "$(ZIG)" ] || { echo "no zig at $(ZIG): run make -f Makefile.xc setup" >&2; exit 1; }
	$(if $(filter aws-lc,$(or $(TLS),$(TLS_$(5:-static=)))),$(MAKE) -f Makefile.xc awslc-deps && \
		$(call awslc_env,$(1),$(3))) \
	ZIG="$(ZIG)" \
	XC_ZIG_TARGET=$(3) XC_ZIG_CFLAGS="$(4)" XC_OPENSSL_EXTRA="$(OPENSSL_EXTRA_$(1))" \
	CC_$(subst -,_,$(1))=$(CURDIR)/xc/zig-cc AR_$(subst -,_,$(1))=$(CURDIR)/xc/zig-ar \
	RANLIB_$(subst -,_,$(1))=$(CURDIR)/xc/zig-ranlib \
	CARGO_TARGET_$(2)_LINKER=$(CURDIR)/xc/zig-cc \
	PIXELSERV_DEFAULT_CERT_PATH=$(or $(7),$(ROUTER_CERT_PATH)) \
	$(MAKE) -f Makefile.xc xc-one T=$(1) N=$(5) XCARGO="+$(NIGHTLY)" \
		XBUILDSTD="$(ROUTER_BUILD_STD)" XRUSTFLAGS="$(ROUTER_RUSTFLAGS) $(6)" \
		XFEATURES=$(if $(filter aws-lc,$(or $(TLS),$(TLS_$(5:-static=)))),aws-lc,vendored)
endef

# armv7 Rust code at opt-level "z": the 2.5 MB budget (issue 11) did not hold the three
# processes (issue 17) and the setup page (issue 20) at "s": 2,504,100 bytes at "s",
# 2,444,332 at "z". OpenSSL's C is -Os either way and its assembly is unchanged, so the
# handshake costs the same; the request path's own code is a little slower.
armv7: export CARGO_PROFILE_RELEASE_SMALL_OPT_LEVEL = z
armv7:
	$(call router,$(ARMV7_TARGET),ARMV7_UNKNOWN_LINUX_MUSLEABI,arm-linux-musleabi,\
		-mcpu=cortex_a9+soft_float-neon-vfp2sp-fpregs,armv7-static,\
		-C target-cpu=cortex-a9 -C target-feature=-neon)

aarch64:
	$(call router,$(AARCH64_TARGET),AARCH64_UNKNOWN_LINUX_MUSL,aarch64-linux-musl,,aarch64-static,)

# x86-64 is built like the routers (musl from Zig, std from rust-src), for baseline x86-64,
# with the FHS default CERT_PATH (Docker, PCs). It was a glibc +crt-static build until
# issue 22: that route's OpenSSL came out configured without threads (see xc/openssl-perl)
# and corrupted its heap under concurrent first visits, and static glibc cannot use NSS.
static:
	$(call router,$(X86_64_TARGET),X86_64_UNKNOWN_LINUX_MUSL,x86_64-linux-musl,,x86_64-static,,$(FHS_CERT_PATH))

# Tier 3 in Rust; the target is soft-float mips32r2 already. 32-bit MIPS has no 64-bit
# atomic instructions, and OpenSSL's lock-free atomics then call __atomic_is_lock_free from
# libatomic, which Zig does not ship: BROKEN_CLANG_ATOMICS makes OpenSSL use its
# mutex-based fallback (a few reference counts and flags, never on a hot path here).
# OpenSSL's MIPS assembly, put through clang's integrated assembler (Zig has no GNU as),
# crashed at the first hash (a load past its input under qemu-mipsel), so OpenSSL is
# built with no-asm there: its C code. (All this for TLS=openssl: mipsel and mips link
# AWS-LC by default, C only as well, which needed none of it; BUILD-ROUTER.md.)
OPENSSL_EXTRA_$(MIPSEL_TARGET) := no-asm
mipsel:
	$(call router,$(MIPSEL_TARGET),MIPSEL_UNKNOWN_LINUX_MUSL,mipsel-linux-musleabi,\
		-mcpu=mips32r2+soft_float -DBROKEN_CLANG_ATOMICS,mipsel-static,)

# Big-endian MIPS (Entware mips-3.4, OpenWrt mips_24kc: Atheros/QCA ath79): the same as
# mipsel in the other byte order, for the same reasons (tier 3, soft-float mips32r2, no
# 64-bit atomics, OpenSSL's C code).
OPENSSL_EXTRA_$(MIPS_TARGET) := no-asm
mips:
	$(call router,$(MIPS_TARGET),MIPS_UNKNOWN_LINUX_MUSL,mips-linux-musleabi,\
		-mcpu=mips32r2+soft_float -DBROKEN_CLANG_ATOMICS,mips-static,)

xc-one:
	$(call xbuild,$(T),$(N),$(XRUSTFLAGS),$(XCARGO),$(XFEATURES))
	@file $(DIST)/$(BIN)-$(N)
# build-std is a `build` flag, so it rides in CARGO_FLAGS.
xc-one: CARGO_FLAGS += $(XBUILDSTD)

# Everything from the registries: rust-src for nightly (rustup), Zig (PyPI, into
# $(TOOLS)/pip, nothing system-wide), qemu-user and file (Debian) for the tests.
setup:
	rustup component add rust-src --toolchain $(NIGHTLY) 2>/dev/null || \
		rustup toolchain install $(NIGHTLY) --profile minimal --component rust-src
	command -v qemu-arm >/dev/null && command -v file >/dev/null && \
		python3 -m pip --version >/dev/null 2>&1 && \
		/usr/bin/python3 -c 'import seccomp' 2>/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends \
			qemu-user file python3-pip python3-seccomp; }
	[ -x "$(ZIG)" ] || python3 -m pip install -q --disable-pip-version-check \
		--target $(TOOLS)/pip ziglang==$(ZIG_VERSION)
	"$(ZIG)" version

# What TLS=aws-lc needs besides `setup`: cmake, and clang with libclang for bindgen (apt).
awslc-deps:
	command -v cmake >/dev/null && command -v clang >/dev/null && \
		ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends \
			cmake clang libclang-dev; }

# --- Debian's rustc 1.85 (the MSRV), and armv7 with Debian packages only ------------------
# Debian bookworm's rustc-web 1.85, unpacked under $(DEB) with dpkg -x (the system
# toolchain is untouched), fetched with the machine's own apt sources.
#  - msrv-check: `cargo check --all-targets` of the crate with that rustc (system OpenSSL).
#  - armv7-smoke: also its armhf std; gcc-arm-linux-gnueabihf links, qemu-user runs.
#    Hard-float glibc (the std Debian ships): a test build, not a router build.
DEB      := $(CURDIR)/target/xc-deb
DEB_RUST := 1.85.0+dfsg3-1~deb12u3
DEB_PKGS := rustc-web=$(DEB_RUST) cargo-web=$(DEB_RUST) libstd-rust-web-1.85=$(DEB_RUST) \
	libstd-rust-web-dev=$(DEB_RUST) libllvm19 libgit2-1.5 libssh2-1 libhttp-parser2.9 \
	libpcre3 libmbedtls14 libmbedx509-1 libmbedcrypto7
DEB_ARMHF_PKGS := libstd-rust-web-1.85:armhf=$(DEB_RUST) libstd-rust-web-dev:armhf=$(DEB_RUST)
# armhf indexes without `dpkg --add-architecture`: a private apt state, the system's sources.
DEB_APT_ARMHF = apt-get -q -o APT::Architectures::=amd64 -o APT::Architectures::=armhf \
	-o Dir::State::Lists=$(DEB)/lists -o Dir::Cache=$(DEB)
DEB_ENV   = PATH="$(DEB)/root/usr/bin:$$PATH" \
	LD_LIBRARY_PATH="$(DEB)/root/usr/lib/x86_64-linux-gnu:$(DEB)/root/lib/x86_64-linux-gnu"
GNUEABIHF := armv7-unknown-linux-gnueabihf

# System packages for the apt route (root).
setup-apt:
	apt-get install -y --no-install-recommends gcc-arm-linux-gnueabihf libc6-dev-armhf-cross \
		qemu-user curl file

$(DEB)/root/usr/bin/rustc:
	mkdir -p $(DEB)/archives $(DEB)/root
	apt-cache show rustc-web=$(DEB_RUST) >/dev/null 2>&1 || apt-get update -qq
	cd $(DEB)/archives && apt-get download -q $(DEB_PKGS)
	for f in $(DEB)/archives/*.deb; do dpkg -x "$$f" $(DEB)/root || exit 1; done

$(DEB)/armhf.stamp: $(DEB)/root/usr/bin/rustc
	mkdir -p $(DEB)/lists/partial $(DEB)/armhf/partial
	$(DEB_APT_ARMHF) update
	cd $(DEB)/armhf && $(DEB_APT_ARMHF) download $(DEB_ARMHF_PKGS)
	for f in $(DEB)/armhf/*.deb; do dpkg -x "$$f" $(DEB)/root || exit 1; done
	touch $@

msrv-check: $(DEB)/root/usr/bin/rustc
	$(DEB_ENV) rustc -V
	$(DEB_ENV) cargo check --locked --all-targets --target-dir $(CURDIR)/target/msrv

armv7-gnueabihf: $(DEB)/armhf.stamp
	$(DEB_ENV) CC_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc \
	AR_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-ar \
	CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc \
	$(MAKE) -f Makefile.xc xc-one T=$(GNUEABIHF) N=armv7-gnueabihf-static \
		XRUSTFLAGS="-C target-cpu=cortex-a9 -C target-feature=-neon"

armv7-smoke: armv7-gnueabihf
	QEMU_LD_PREFIX=/usr/arm-linux-gnueabihf sh .ci/static-check.sh --no-build \
		--run "qemu-arm -cpu cortex-a9" $(DIST)/$(BIN)-armv7-gnueabihf-static

# --- Router tests, packages, release files -----------------------------------------------
# Every binary is dist/pixelserv-tls-<CPU>-static; x86_64 is the `static` target.
ROUTERS        := armv7 aarch64 mipsel mips
CPUS           := $(ROUTERS) x86_64
VERSION        := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
# Packages: the Architecture field (Entware's feed, OpenWrt's name for the CPU) -> binary.
# armv7-2.6 is the frozen feed of the Broadcom Cortex-A9 routers on kernel 2.6.36: the
# static armv7 binary needs nothing from it. OpenWrt's hard-float arm_cortex-a9_vfpv3-d16
# takes the soft-float binary too: a static program brings its own calling convention.
ENTWARE_FEEDS  := armv7-2.6 armv7-3.2 aarch64-3.10 mipsel-3.4 mips-3.4 x64-3.2
OPENWRT_ARCHS  := mips_24kc mipsel_24kc arm_cortex-a9 arm_cortex-a9_vfpv3-d16 \
	aarch64_cortex-a53 aarch64_generic x86_64
CPU_armv7-2.6  := armv7
CPU_armv7-3.2  := armv7
CPU_aarch64-3.10 := aarch64
CPU_mipsel-3.4 := mipsel
CPU_mips-3.4   := mips
CPU_x64-3.2    := x86_64
CPU_mips_24kc  := mips
CPU_mipsel_24kc := mipsel
CPU_arm_cortex-a9 := armv7
CPU_arm_cortex-a9_vfpv3-d16 := armv7
CPU_aarch64_cortex-a53 := aarch64
CPU_aarch64_generic := aarch64
CPU_x86_64     := x86_64
QEMU_armv7     := qemu-arm -cpu cortex-a9
QEMU_aarch64   := qemu-aarch64
QEMU_mipsel    := qemu-mipsel -cpu 24Kc
QEMU_mips      := qemu-mips -cpu 24Kc
QEMU_x86_64    :=
IPK             = $(DIST)/$(BIN)_$(VERSION)-1_$(1).ipk
ENTWARE_IPKS   := $(foreach a,$(ENTWARE_FEEDS),$(call IPK,$(a)))
OPENWRT_IPKS   := $(foreach a,$(OPENWRT_ARCHS),$(call IPK,$(a)))
# The packaging scripts date their archives by the last commit (SOURCE_DATE_EPOCH); it is not
# exported to the builds, where cc (for OpenSSL) would rebuild on every new value.

routers: $(ROUTERS)

# The TLS 1.3 suite each emulated CPU must get from the server (context::suite_order):
# ChaCha20 where it has no AES instructions (Cortex-A9, 24Kc), AES-128-GCM on qemu-aarch64's
# default CPU, which has them. x86-64 runs natively: it depends on the machine.
SUITE_armv7   := TLS_CHACHA20_POLY1305_SHA256
SUITE_mipsel  := TLS_CHACHA20_POLY1305_SHA256
SUITE_mips    := TLS_CHACHA20_POLY1305_SHA256
SUITE_aarch64 := TLS_AES_128_GCM_SHA256
SUITE_ARG      = $(if $(SUITE_$(1)),--suite $(SUITE_$(1)))

# HTTP GIF and an HTTPS first visit verified against the CA the binary made, under qemu.
# (A pattern rule: not in .PHONY, where make would skip it.)
smoke-%:
	sh .ci/static-check.sh --no-build $(call SUITE_ARG,$*) --run "$(QEMU_$*)" $(DIST)/$(BIN)-$*-static

# The same on the oldest kernel each Entware feed supports (the .ipk's -3.2/-3.10/-3.4 is
# the feed's; armv7's oldest router kernels are 2.6.36): xc/old-kernel refuses every newer
# system call with ENOSYS and the options such a kernel does not know (SO_REUSEPORT,
# TCP_FASTOPEN, PR_SET_NO_NEW_PRIVS, CLOCK_BOOTTIME) as it would; qemu's -r fakes uname.
OLD_KERNEL_armv7   := 2.6.36
OLD_KERNEL_aarch64 := 3.10
OLD_KERNEL_mipsel  := 3.4
OLD_KERNEL_mips    := 3.4
smoke-old-%:
	sh .ci/static-check.sh --no-build $(call SUITE_ARG,$*) --run "xc/old-kernel $(OLD_KERNEL_$*) \
		$(firstword $(QEMU_$*)) -r $(OLD_KERNEL_$*) $(wordlist 2,9,$(QEMU_$*))" \
		$(DIST)/$(BIN)-$*-static

# A Cortex-A9 without VFP and NEON, as in Broadcom's BCM4708/4709: a floating-point
# instruction anywhere on the path dies with SIGILL. (mipsel's 24Kc has no FPU already.)
smoke-novfp-armv7:
	sh .ci/static-check.sh --no-build $(call SUITE_ARG,armv7) --run "qemu-arm -cpu cortex-a9,vfp=off,neon=off" \
		$(DIST)/$(BIN)-armv7-static

# 2,500 first visits of never-seen names from 24 concurrent clients, each verified against
# the CA; fails unless all verify and the server is still alive (issue 22). The time is
# printed, not judged. stress-x86_64 runs natively, the routers under qemu-user.
BENCH := tools/bench/target/release/pixelserv-bench
STRESS_VISITS ?= 2500
STRESS_CLIENTS ?= 24
$(BENCH): tools/bench/Cargo.toml tools/bench/Cargo.lock $(wildcard tools/bench/src/*.rs)
	cd tools/bench && $(CARGO) build --release --locked
stress-%: $(BENCH)
	$(BENCH) --server $(DIST)/$(BIN)-$*-static --first-visits $(STRESS_VISITS) \
		--clients $(STRESS_CLIENTS) --server-wrapper "$(QEMU_$*)"

# Packages of binaries already in dist/ (ipk-files), or after building them all (ipk).
ipk-files:
	$(foreach a,$(ENTWARE_FEEDS),sh xc/ipk.sh $(a) $(DIST)/$(BIN)-$(CPU_$(a))-static $(DIST) &&) true
	$(foreach a,$(OPENWRT_ARCHS),sh xc/ipk.sh --openwrt $(a) $(DIST)/$(BIN)-$(CPU_$(a))-static $(DIST) &&) true
ipk: routers static
	$(MAKE) -f Makefile.xc ipk-files

# Installs each package into a scratch root and starts it from there under qemu (root):
# xc/ipk-test.sh for Entware, xc/openwrt-test.sh for OpenWrt (UCI, procd, postinst/prerm).
ipk-test: ipk
	sh xc/ipk-test.sh $(ENTWARE_IPKS)
	sh xc/openwrt-test.sh $(OPENWRT_IPKS)

# Per CPU: pixelserv-tls-VERSION-CPU.tar.gz (binary, man page, init scripts, LICENSE,
# README), the .ipk files, the bare binaries, SHA256SUMS over all of them.
release: ipk
	$(foreach c,$(CPUS),sh xc/tarball.sh $(c) $(DIST)/$(BIN)-$(c)-static $(DIST) &&) true
	cd $(DIST) && sha256sum $(foreach c,$(CPUS),$(BIN)-$(c)-static) \
		$(notdir $(ENTWARE_IPKS) $(OPENWRT_IPKS)) \
		$(foreach c,$(CPUS),$(BIN)-$(VERSION)-$(c).tar.gz) > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

# Everything a release needs to have passed, longer than CI allows for every CPU.
release-check: release
	$(foreach c,$(CPUS),$(MAKE) -f Makefile.xc smoke-$(c) stress-$(c) &&) true
	$(foreach r,$(ROUTERS),$(MAKE) -f Makefile.xc smoke-old-$(r) &&) true
	$(MAKE) -f Makefile.xc smoke-novfp-armv7
	sh xc/ipk-test.sh $(ENTWARE_IPKS)
	sh xc/openwrt-test.sh $(OPENWRT_IPKS)
	$(MAKE) -f Makefile.xc size docker-test measure

# The Dockerfile's image built with buildah and its entrypoint run as a container would
# (xc/docker-test.sh; no container engine needed). DOCKER_CPU: a router CPU or x86_64.
DOCKER_CPU ?= aarch64
docker-test:
	command -v buildah >/dev/null || apt-get install -y -qq --no-install-recommends buildah
	sh xc/docker-test.sh $(DIST)/$(BIN)-$(DOCKER_CPU)-static "$(QEMU_$(DOCKER_CPU))"

# Idle RSS and kB per idle TLS connection of each router binary, guest view (tools/xc-mem.py).
MEASURE_CONNS ?= 1000
measure:
	ulimit -n 8192 && $(foreach r,$(ROUTERS),python3 tools/xc-mem.py --qemu "$(QEMU_$(r))" \
		--conns $(MEASURE_CONNS) $(DIST)/$(BIN)-$(r)-static &&) true

# --- The emulated router (issue 18) ------------------------------------------------------
# A 256 MB ARM board with Debian's kernel and busybox-static, fetched with apt-get download
# (registries only) and kept under target/vm/<Debian architecture>:
#   armv7    qemu-system-arm -M vexpress-a9 -cpu cortex-a9, armhf linux-image-armmp and its
#            vexpress-v2p-ca9.dtb
#   aarch64  qemu-system-aarch64 -M virt -cpu cortex-a53, arm64 linux-image-arm64 (qemu
#            makes the device tree)
# Both with virtio_mmio/virtio_net (modules in both kernels). The router binary runs as the
# Entware package starts it; the host reaches it through qemu's user network, forwarded
# from 127.0.0.1 only (restrict=on: the guest reaches nothing). tools/vm-router.py prints
# MemAvailable and server RSS before start / idle / VM_CONNS idle TLS 1.3 connections / 10 s
# after they close, then floods a fresh boot at the default -T with VM_FLOOD attempts.
#   make -f Makefile.xc vm-armv7        the table and the flood (about 15 min)
#   make -f Makefile.xc vm-armv7-boot   boot, serve, print idle memory, stop (about 40 s)
#   make -f Makefile.xc vm-aarch64 vm-aarch64-boot   the same on the Cortex-A53
VM         := $(CURDIR)/target/vm
VM_CONNS   ?= 10000
VM_FLOOD   ?= 30000
VM_DEB_armv7     := armhf
VM_DEB_aarch64   := arm64
VM_KERNEL_armhf  := linux-image-armmp
VM_KERNEL_arm64  := linux-image-arm64
# Debian's qemu-system-arm carries qemu-system-aarch64 too.
$(VM)/%/root/bin/busybox:
	command -v qemu-system-arm >/dev/null && command -v qemu-system-aarch64 >/dev/null || \
		apt-get install -y -qq --no-install-recommends qemu-system-arm
	dpkg --print-foreign-architectures | grep -qx $* || dpkg --add-architecture $*
	apt-cache show busybox-static:$* >/dev/null 2>&1 || apt-get update -qq
	rm -rf $(VM)/$* && mkdir -p $(VM)/$*/debs
	k=$$(apt-cache depends $(VM_KERNEL_$*):$* | sed -n 's/.*Depends: \(linux-image-[^:]*\).*/\1/p' | head -n 1) && \
		cd $(VM)/$*/debs && apt-get download -q "$$k:$*" busybox-static:$*
	for f in $(VM)/$*/debs/*.deb; do dpkg -x "$$f" $(VM)/$*/root || exit 1; done
vm-armv7 vm-armv7-boot: $(VM)/armhf/root/bin/busybox
vm-aarch64 vm-aarch64-boot: $(VM)/arm64/root/bin/busybox
# The CPU of vm-CPU and vm-CPU-boot.
VM_CPU = $(patsubst vm-%,%,$(patsubst %-boot,%,$@))
vm-armv7 vm-armv7-boot vm-aarch64 vm-aarch64-boot:
	[ -x $(DIST)/$(BIN)-$(VM_CPU)-static ] || $(MAKE) -f Makefile.xc $(VM_CPU)
	python3 tools/vm-router.py --arch $(VM_CPU) --root $(VM)/$(VM_DEB_$(VM_CPU))/root \
		--bin $(DIST)/$(BIN)-$(VM_CPU)-static \
		$(if $(filter %-boot,$@),--boot-only,--conns $(VM_CONNS) --flood $(VM_FLOOD))

# --- misc --------------------------------------------------------------------------------
# Budgets (issues 11, 19): armv7 2.5 MB, aarch64 2.8 MB, mipsel and mips 3.4 MB, x86-64
# 4.2 MB (10^6 bytes).
BUDGETS := armv7:2500000 aarch64:2800000 mipsel:3400000 mips:3400000 x86_64:4200000
size:
	@for f in $(DIST)/$(BIN)-*-static; do \
		[ -f "$$f" ] || continue; n=$$(wc -c < "$$f"); b=; \
		for cb in $(BUDGETS); do \
			[ "$$f" = "$(DIST)/$(BIN)-$${cb%%:*}-static" ] && b=$${cb#*:}; \
		done; \
		if [ -z "$$b" ]; then printf '%10d  %s\n' $$n "$$f"; \
		elif [ $$n -le $$b ]; then printf '%10d  %s  (budget %d: ok)\n' $$n "$$f" $$b; \
		else printf '%10d  %s  (budget %d: OVER)\n' $$n "$$f" $$b; fi; \
	done; true

install:
	@src=$$(ls -t $(DIST)/$(BIN)-x86_64-static target/release/$(BIN) 2>/dev/null | head -n 1); \
	[ -n "$$src" ] || { echo "no binary: run make -f Makefile.xc static or cargo build --release" >&2; exit 1; }; \
	install -d "$(DESTDIR)$(PREFIX)/bin"; \
	install -m 0755 "$$src" "$(DESTDIR)$(PREFIX)/bin/$(BIN)"; \
	echo "installed $$src as $(DESTDIR)$(PREFIX)/bin/$(BIN)"
	@if [ -f include-docs/$(BIN).1 ]; then \
		install -d "$(DESTDIR)$(PREFIX)/share/man/man1"; \
		install -m 0644 include-docs/$(BIN).1 "$(DESTDIR)$(PREFIX)/share/man/man1/$(BIN).1"; \
	fi

clean:
	rm -rf $(XCDIR) $(DIST)

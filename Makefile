# Everyday commands. Static and router builds live in Makefile.xc.
.PHONY: build test check browser-test setup-screenshot bench bench-quick bench-peers soak fuzz-smoke fuzz static size install

build:
	cargo build --release

test:
	cargo test

# What CI runs.
check:
	bash .ci/run

# The AWS-LC build (cargo feature aws-lc; needs cmake, clang and libclang-dev) in a target
# directory of its own, so that switching does not rebuild the default (OpenSSL) one.
AWSLC_FLAGS = --features aws-lc --target-dir target/aws-lc

# Headless Chromium and Firefox ESR load 60 never-seen HTTPS names each (tests/browser/run.py),
# then open the setup page with and without the CA trusted (tests/browser/setup_page.py).
# Needs chromium, firefox-esr, libnss3-tools (certutil), python3. BROWSER_PROFILE=debug tests
# the binary `cargo test` built instead of a release build; TLS=aws-lc the AWS-LC build.
BROWSER_PROFILE ?= release
TLS ?= openssl
BROWSER_DIR = $(if $(filter aws-lc,$(TLS)),target/aws-lc,target)
browser-test:
	cargo build $(if $(filter release,$(BROWSER_PROFILE)),--release) $(if $(filter aws-lc,$(TLS)),$(AWSLC_FLAGS))
	python3 tests/browser/run.py --server $(BROWSER_DIR)/$(BROWSER_PROFILE)/pixelserv-tls

# The setup page at phone width (390x1160 CSS px: a screen and a half, iPhone User-Agent, a profile that trusts the
# CA) in headless Chromium, for README's CA section. Same needs as browser-test.
setup-screenshot:
	cargo build $(if $(filter release,$(BROWSER_PROFILE)),--release)
	python3 tests/browser/run.py --server target/$(BROWSER_PROFILE)/pixelserv-tls \
		--screenshot include-docs/assets/setup-page.png

# Load and resource figures (tools/bench); prints a table, asserts nothing.
bench: build
	cargo run --release --manifest-path tools/bench/Cargo.toml -- --server target/release/pixelserv-tls

bench-quick: build
	cargo run --release --manifest-path tools/bench/Cargo.toml -- --server target/release/pixelserv-tls --quick

# Ours (the AWS-LC build) next to nginx and HAProxy (Debian's, installed with apt-get when
# missing), one table with the ratio to the best peer, plus system calls and instructions per
# operation; the OpenSSL build in a column of its own.
bench-peers: build
	cargo build --release $(AWSLC_FLAGS)
	cargo run --release --manifest-path tools/bench/Cargo.toml -- --server target/aws-lc/release/pixelserv-tls --also 'ours, OpenSSL=target/release/pixelserv-tls' --peer nginx,haproxy

# Every fuzz target for ~30 s each (SECS=n to change); installs cargo-fuzz if missing.
fuzz-smoke:
	sh fuzz/smoke.sh

# Each target for 10 M executions or 10 minutes.
fuzz:
	sh fuzz/run.sh

static size install:
	$(MAKE) -f Makefile.xc $@

//! What this CPU offers that changes which TLS cipher suite is cheapest to serve.

/// Whether this CPU has AES and carry-less multiply instructions, i.e. whether AES-GCM runs
/// in hardware. Without them (Cortex-A9, MIPS 24Kc/74Kc, old x86) AES-GCM is table-based
/// software: about three times the cycles of ChaCha20-Poly1305 there, not constant-time,
/// and its context is the larger of the two on every idle connection
/// (include-docs/PERFORMANCE.md, "ChaCha20 first on CPUs without AES instructions").
/// Read once at startup: std's detection may open /proc/self/auxv, which the network
/// process's filter no longer allows later.
pub fn aes_instructions() -> bool {
    detect()
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn detect() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn detect() -> bool {
    // Rust's "aes" on AArch64 is FEAT_AES together with FEAT_PMULL.
    std::arch::is_aarch64_feature_detected!("aes")
}

#[cfg(target_arch = "arm")]
fn detect() -> bool {
    // ARMv8 CPUs running 32-bit code report these in AT_HWCAP2 (<asm/hwcap.h>); a kernel
    // too old to know AT_HWCAP2 answers 0, and its CPUs have neither.
    const HWCAP2_AES: libc::c_ulong = 1 << 0;
    const HWCAP2_PMULL: libc::c_ulong = 1 << 1;
    // SAFETY: reads the auxiliary vector the kernel gave this process; no side effects.
    let caps = unsafe { libc::getauxval(libc::AT_HWCAP2) };
    caps & (HWCAP2_AES | HWCAP2_PMULL) == HWCAP2_AES | HWCAP2_PMULL
}

#[cfg(not(any(
    target_arch = "x86",
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "arm"
)))]
fn detect() -> bool {
    // MIPS router CPUs have no AES instructions, and OpenSSL has no MIPS AES-GCM code.
    false
}

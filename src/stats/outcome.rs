//! The outcomes that move counters: the TLS version a connection negotiated, why a
//! handshake failed, why a connection closed. `Stats::closed` maps them to counters.

use super::counter::Counter;

/// The TLS version a connection negotiated: counted in `v10`..`v13` and shown in the access
/// log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    V10,
    V11,
    V12,
    V13,
}

impl TlsVersion {
    pub const ALL: [TlsVersion; 4] = [
        TlsVersion::V10,
        TlsVersion::V11,
        TlsVersion::V12,
        TlsVersion::V13,
    ];

    pub fn counter(self) -> Counter {
        match self {
            TlsVersion::V10 => Counter::Tls10,
            TlsVersion::V11 => Counter::Tls11,
            TlsVersion::V12 => Counter::Tls12,
            TlsVersion::V13 => Counter::Tls13,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            TlsVersion::V10 => "1.0",
            TlsVersion::V11 => "1.1",
            TlsVersion::V12 => "1.2",
            TlsVersion::V13 => "1.3",
        }
    }
}

/// Why a TLS handshake did not complete (COMPATIBILITY.md §6.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// No certificate could be had for the name (`slm`).
    NoCertificate,
    /// The SNI is not a name we make certificates for (`slu`, `snx`).
    InvalidSni,
    /// The client's alert: it does not trust our CA (`slu`, `uca`).
    UnknownCa,
    /// The client's alert: bad certificate (`slu`, `ucb`).
    BadCertificate,
    /// The client's alert: certificate unknown (`slu`, `uce`).
    CertificateUnknown,
    /// The client hung up after our ServerHello instead of sending an alert (`slu`, `ush`).
    ClientHungUp,
    /// The handshake deadline passed (`slu`, `tmo`).
    Timeout,
    /// Anything else: bad records, no shared cipher, no local address (`slu`).
    Other,
}

impl HandshakeFailure {
    pub const ALL: [HandshakeFailure; 8] = [
        HandshakeFailure::NoCertificate,
        HandshakeFailure::InvalidSni,
        HandshakeFailure::UnknownCa,
        HandshakeFailure::BadCertificate,
        HandshakeFailure::CertificateUnknown,
        HandshakeFailure::ClientHungUp,
        HandshakeFailure::Timeout,
        HandshakeFailure::Other,
    ];

    /// The `reason` label of `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::NoCertificate => "no_certificate",
            HandshakeFailure::InvalidSni => "invalid_sni",
            HandshakeFailure::UnknownCa => "unknown_ca",
            HandshakeFailure::BadCertificate => "bad_certificate",
            HandshakeFailure::CertificateUnknown => "certificate_unknown",
            HandshakeFailure::ClientHungUp => "client_hung_up",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Other => "other",
        }
    }
}

/// Why a connection closed. `Stats::closed` maps each to the counters it moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Everything asked for was answered (or the server is shutting down): nothing counted.
    Done,
    /// The client closed or reset the connection while we were reading; `partial`: in the
    /// middle of a request (`cls` then, or when it never completed a request).
    PeerClosed {
        partial: bool,
    },
    /// The client went away while a response was being sent (`cly`).
    PeerGone,
    /// A socket or TLS error that is not the client leaving (`err`).
    Failed,
    /// A request head, body or response made no progress in time (`tmo`, and `cls` when no
    /// request was answered).
    Stalled,
    /// Keep-alive idle time ran out (`cls` when the connection never carried a request).
    Idle,
    Handshake(HandshakeFailure),
    /// Closed while idle or silent to admit a new connection at the `-T` limit (`clt`).
    Evicted,
}

/// `CloseReason` without its details: the `reason` label of closed connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    Done,
    ClientClosed,
    ClientGone,
    Error,
    Stalled,
    Idle,
    HandshakeFailed,
    Evicted,
}

impl CloseKind {
    pub const ALL: [CloseKind; 8] = [
        CloseKind::Done,
        CloseKind::ClientClosed,
        CloseKind::ClientGone,
        CloseKind::Error,
        CloseKind::Stalled,
        CloseKind::Idle,
        CloseKind::HandshakeFailed,
        CloseKind::Evicted,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CloseKind::Done => "done",
            CloseKind::ClientClosed => "client_closed",
            CloseKind::ClientGone => "client_gone",
            CloseKind::Error => "error",
            CloseKind::Stalled => "stalled",
            CloseKind::Idle => "idle",
            CloseKind::HandshakeFailed => "handshake_failed",
            CloseKind::Evicted => "evicted",
        }
    }
}

impl CloseReason {
    pub fn kind(self) -> CloseKind {
        match self {
            CloseReason::Done => CloseKind::Done,
            CloseReason::PeerClosed { .. } => CloseKind::ClientClosed,
            CloseReason::PeerGone => CloseKind::ClientGone,
            CloseReason::Failed => CloseKind::Error,
            CloseReason::Stalled => CloseKind::Stalled,
            CloseReason::Idle => CloseKind::Idle,
            CloseReason::Handshake(_) => CloseKind::HandshakeFailed,
            CloseReason::Evicted => CloseKind::Evicted,
        }
    }
}

/// What `Stats::closed` needs to know about the connection besides the reason.
#[derive(Clone, Copy, Debug)]
pub struct Ended {
    pub reason: CloseReason,
    /// Requests answered on the connection.
    pub requests: u64,
    /// The TLS version, once the handshake completed.
    pub tls: Option<TlsVersion>,
}

//! Server statistics: the counters of the original's servstats (same names, same meanings,
//! with its counting defects fixed), the running averages, and the one place that says
//! which counters an outcome moves (a TLS version, a failed handshake, a closed connection).
//!
//! - `counter`: the vocabulary (every counter, its servstats name and label);
//! - `outcome`: what happened to a connection or handshake;
//! - this file: `Stats`, which the loop updates, and the `Snapshot` a page reads;
//! - `pages`: the servstats HTML, text and JSON pages and the stats log line;
//! - `metrics`: `/metrics` in the Prometheus text format;
//! - `top_names` over `topk`: the most requested names.
//!
//! `Detail` holds what only `/metrics` shows (counts by close reason, handshake failure and
//! TLS version, sums for averages) and `names` the most requested names; both are kept apart
//! from the counters so that the servstats pages stay as they are.
//!
//! The event loop owns the one `Stats`; certificate workers report through the loop, so
//! nothing here needs atomics. Gauges that live elsewhere (the certificate and session
//! caches, the log level) arrive as a `Gauges` snapshot when a page is rendered.

pub mod counter;
pub mod metrics;
pub mod outcome;
pub mod pages;
pub mod top_names;
pub mod topk;

use std::time::Instant;

pub use counter::{Counter, CounterInfo, Format, COUNT, ORIGINAL_COUNT, TABLE};
pub use outcome::{CloseKind, CloseReason, Ended, HandshakeFailure, TlsVersion};
use top_names::{Observed, Source, TopNames};

/// Gauges owned outside the loop's `Stats`, read when a page or the stats line is rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    pub log_level: u8,
    /// Certificate cache: entries, reuses, misses (loads), evictions.
    pub certs_cached: u64,
    pub cert_hits: u64,
    pub cert_misses: u64,
    pub cert_purges: u64,
    /// Certificate cache: lookups that found nothing usable, and the `-c` limit.
    pub cert_lookup_misses: u64,
    pub certs_capacity: u64,
    /// Session cache: sessions stored plus reused (`ssh`, as the original), misses, purges.
    pub sessions: u64,
    pub session_misses: u64,
    pub session_purges: u64,
    /// The two parts of `sessions`.
    pub sessions_stored: u64,
    pub session_hits: u64,
    /// Disk budget: certificate files in CERT_PATH, the most allowed, files removed.
    pub cert_files: u64,
    pub cert_files_max: u64,
    pub cert_files_removed: u64,
}

/// Counters and gauges together: what a stats page shows.
pub struct Snapshot<'a> {
    pub stats: &'a Stats,
    pub gauges: Gauges,
}

impl Snapshot<'_> {
    /// The value of `c` as a number; averages as floats.
    pub fn value(&self, c: Counter) -> f64 {
        let g = &self.gauges;
        let gauge = match c {
            Counter::LogLevel => u64::from(g.log_level),
            Counter::CertCacheEntries => g.certs_cached,
            Counter::CertCacheHits => g.cert_hits,
            Counter::CertCacheMisses => g.cert_misses,
            Counter::CertCachePurges => g.cert_purges,
            Counter::SessionCacheHits => g.sessions,
            Counter::SessionCacheMisses => g.session_misses,
            Counter::SessionCachePurges => g.session_purges,
            Counter::CertFiles => g.cert_files,
            Counter::CertFilesMax => g.cert_files_max,
            Counter::CertFilesRemoved => g.cert_files_removed,
            _ => return self.stats.value(c),
        };
        gauge as f64
    }

    pub fn uptime_secs(&self) -> u64 {
        self.stats.uptime_secs()
    }
}

/// The original's running average (COMPATIBILITY.md §8.3): arithmetic mean while fewer than
/// 500 requests have been counted, then an exponential moving average with weight 0.002.
#[derive(Clone, Copy, Debug, Default)]
pub struct Average {
    value: f64,
    samples: u64,
}

impl Average {
    pub const SWITCH_AT: u64 = 500;

    pub fn add(&mut self, sample: f64, req: u64) {
        self.samples += 1;
        if req < Self::SWITCH_AT {
            self.value += (sample - self.value) / self.samples as f64;
        } else {
            self.value += 0.002 * (sample - self.value);
        }
    }

    pub fn value(&self) -> f64 {
        self.value
    }
}

/// A sum and the number of samples in it: a Prometheus summary without quantiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum {
    pub sum: u64,
    pub count: u64,
}

impl Sum {
    fn add(&mut self, v: u64) {
        self.sum = self.sum.saturating_add(v);
        self.count += 1;
    }
}

/// Measurements only `/metrics` shows.
#[derive(Clone, Debug, Default)]
pub struct Detail {
    pub accepted: u64,
    /// By `CloseKind`.
    pub closed: [u64; CloseKind::ALL.len()],
    /// By `HandshakeFailure`.
    pub handshake_failures: [u64; HandshakeFailure::ALL.len()],
    /// Completed handshakes by `TlsVersion`.
    pub handshakes: [u64; TlsVersion::ALL.len()],
    /// Certificate jobs that found a usable file on disk, and jobs skipped because every
    /// client waiting for them had gone.
    pub certs_loaded: u64,
    pub certs_abandoned: u64,
    /// Requests that sent bytes: their sizes and processing times.
    pub request_bytes: Sum,
    pub request_micros: Sum,
    /// Longest processing time of any request.
    pub request_micros_max: u64,
    /// Requests per closed connection.
    pub conn_requests: Sum,
}

pub struct Stats {
    counts: [u64; COUNT],
    detail: Detail,
    names: TopNames,
    avg: Average,
    tav: Average,
    kvg: Average,
    started: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            counts: [0; COUNT],
            detail: Detail::default(),
            names: TopNames::new(),
            avg: Average::default(),
            tav: Average::default(),
            kvg: Average::default(),
            started: Instant::now(),
        }
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.counts[c as usize]
    }

    /// Tests set any counter, gauges included, to check the pages' layout.
    #[cfg(test)]
    pub fn set(&mut self, c: Counter, v: u64) {
        self.counts[c as usize] = v;
    }

    pub fn bump(&mut self, c: Counter) {
        self.counts[c as usize] += 1;
    }

    /// One answered (or failed) request: its outcome counter, `req`, and the size/time
    /// samples. `bytes` = request bytes received (head + body); `micros` = processing time.
    pub fn request(&mut self, outcome: Counter, bytes: u64, micros: u64) {
        self.bump(outcome);
        self.bump(Counter::Requests);
        let req = self.get(Counter::Requests);
        let ms = micros / 1000;
        if bytes > 0 {
            self.avg.add(bytes as f64, req);
            self.tav.add(ms as f64, req);
            self.max(Counter::RequestSizeMax, bytes);
            self.detail.request_bytes.add(bytes);
            self.detail.request_micros.add(micros);
        }
        self.max(Counter::RequestTimeMax, ms);
        let max = &mut self.detail.request_micros_max;
        *max = (*max).max(micros);
    }

    /// An event that counts in `req` without size/time samples (failed handshakes,
    /// connections closed before any request).
    pub fn event(&mut self, outcome: Counter) {
        self.bump(outcome);
        self.bump(Counter::Requests);
    }

    /// A TLS handshake completed and carried a request: `slh` and its version.
    pub fn tls_request(&mut self, version: TlsVersion, early_data: bool) {
        self.bump(Counter::HttpsAnswered);
        self.bump(version.counter());
        if early_data {
            self.bump(Counter::EarlyData);
        }
    }

    /// A TLS handshake completed.
    pub fn handshake_done(&mut self, version: TlsVersion) {
        self.detail.handshakes[version as usize] += 1;
    }

    /// A certificate job found a usable file.
    pub fn cert_loaded(&mut self) {
        self.detail.certs_loaded += 1;
    }

    /// A certificate job was skipped: nobody waited for it any more.
    pub fn cert_abandoned(&mut self) {
        self.detail.certs_abandoned += 1;
    }

    /// A client asked for a name (`top_names` says which sources count).
    pub fn name_seen(&mut self, source: Source, seen: Observed) {
        self.names.observe(source, seen);
    }

    pub fn names(&self) -> &TopNames {
        &self.names
    }

    pub fn detail(&self) -> &Detail {
        &self.detail
    }

    /// A connection closed: the counters its reason moves (the only place that decides).
    pub fn closed(&mut self, end: Ended) {
        self.detail.closed[end.reason.kind() as usize] += 1;
        let silent = end.requests == 0;
        match end.reason {
            CloseReason::Done => {}
            CloseReason::PeerClosed { partial } => {
                if partial || silent {
                    self.dropped_silent(end);
                }
            }
            CloseReason::PeerGone => self.event(Counter::ClientGone),
            CloseReason::Failed => self.event(Counter::Failed),
            CloseReason::Stalled => {
                self.bump(Counter::Timeouts);
                if silent {
                    self.dropped_silent(end);
                }
            }
            CloseReason::Idle => {
                if silent {
                    self.dropped_silent(end);
                }
            }
            CloseReason::Handshake(f) => self.handshake_failed(f),
            // Not a request: an idle connection, or one that never sent one.
            CloseReason::Evicted => self.bump(Counter::Evicted),
        }
    }

    /// `cls`; over TLS also `slc` and the version (a handshake that carried no request).
    fn dropped_silent(&mut self, end: Ended) {
        self.event(Counter::ClosedSilent);
        if let (Some(v), 0) = (end.tls, end.requests) {
            self.bump(Counter::HttpsSilent);
            self.bump(v.counter());
        }
    }

    fn handshake_failed(&mut self, f: HandshakeFailure) {
        self.detail.handshake_failures[f as usize] += 1;
        let detail = match f {
            HandshakeFailure::NoCertificate => return self.event(Counter::HttpsNoCertificate),
            HandshakeFailure::InvalidSni => Some(Counter::InvalidSni),
            HandshakeFailure::UnknownCa => Some(Counter::AlertUnknownCa),
            HandshakeFailure::BadCertificate => Some(Counter::AlertBadCertificate),
            HandshakeFailure::CertificateUnknown => Some(Counter::AlertCertificateUnknown),
            HandshakeFailure::ClientHungUp => Some(Counter::HungUpAfterHello),
            HandshakeFailure::Timeout => Some(Counter::Timeouts),
            HandshakeFailure::Other => None,
        };
        if let Some(d) = detail {
            self.bump(d);
        }
        self.event(Counter::HttpsHandshakeFailed);
    }

    /// A connection opened: `kcc`/`kmx`.
    pub fn conn_opened(&mut self) {
        self.detail.accepted += 1;
        self.bump(Counter::ConnsOpen);
        let kcc = self.get(Counter::ConnsOpen);
        self.max(Counter::ConnsOpenMax, kcc);
    }

    /// A connection ended after serving `requests` requests: `kcc`, `kvg`, `krq`.
    pub fn conn_closed(&mut self, requests: u64) {
        let kcc = &mut self.counts[Counter::ConnsOpen as usize];
        *kcc = kcc.saturating_sub(1);
        let req = self.get(Counter::Requests);
        self.kvg.add(requests as f64, req);
        self.max(Counter::RequestsPerConnMax, requests);
        self.detail.conn_requests.add(requests);
    }

    fn max(&mut self, c: Counter, v: u64) {
        let slot = &mut self.counts[c as usize];
        *slot = (*slot).max(v);
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// The value of `c` as a number; averages as floats.
    pub fn value(&self, c: Counter) -> f64 {
        match c {
            Counter::Uptime => self.uptime_secs() as f64,
            Counter::RequestSizeAvg => self.avg.value(),
            Counter::RequestTimeAvg => self.tav.value(),
            Counter::RequestsPerConnAvg => self.kvg.value(),
            _ => self.get(c) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_is_mean_then_ema() {
        let mut a = Average::default();
        a.add(10.0, 1);
        a.add(20.0, 2);
        assert_eq!(a.value(), 15.0);
        a.add(1015.0, 500);
        assert!((a.value() - (15.0 + 0.002 * 1000.0)).abs() < 1e-9);
    }

    #[test]
    fn request_counts_req_and_samples() {
        let mut s = Stats::new();
        s.request(Counter::Gif, 100, 2500);
        s.request(Counter::Gif, 300, 500);
        assert_eq!(s.get(Counter::Gif), 2);
        assert_eq!(s.get(Counter::Requests), 2);
        assert_eq!(s.get(Counter::RequestSizeMax), 300);
        assert_eq!(s.get(Counter::RequestTimeMax), 2);
        assert_eq!(s.value(Counter::RequestSizeAvg), 200.0);
        assert_eq!(s.value(Counter::RequestTimeAvg), 1.0);
    }

    #[test]
    fn connections_track_kcc_kmx_kvg_krq() {
        let mut s = Stats::new();
        s.conn_opened();
        s.conn_opened();
        s.conn_closed(3);
        assert_eq!(s.get(Counter::ConnsOpen), 1);
        assert_eq!(s.get(Counter::ConnsOpenMax), 2);
        assert_eq!(s.get(Counter::RequestsPerConnMax), 3);
        assert_eq!(s.value(Counter::RequestsPerConnAvg), 3.0);
    }

    #[test]
    fn label_tables_follow_the_enums() {
        for (i, v) in TlsVersion::ALL.iter().enumerate() {
            assert_eq!(*v as usize, i);
        }
        for (i, f) in HandshakeFailure::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
        }
        for (i, k) in CloseKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
    }

    #[test]
    fn detail_counts_what_the_counters_merge() {
        let mut s = Stats::new();
        s.conn_opened();
        s.conn_opened();
        s.request(Counter::Gif, 100, 2500);
        s.request(Counter::Png, 50, 700);
        s.handshake_done(TlsVersion::V13);
        let end = |reason, requests| Ended {
            reason,
            requests,
            tls: None,
        };
        s.closed(end(CloseReason::Handshake(HandshakeFailure::Timeout), 0));
        s.closed(end(CloseReason::Stalled, 2));
        s.closed(end(CloseReason::Done, 2));
        s.conn_closed(2);
        s.conn_closed(0);
        let d = s.detail();
        assert_eq!(d.accepted, 2);
        assert_eq!(d.handshakes, [0, 0, 0, 1]);
        assert_eq!(d.handshake_failures[HandshakeFailure::Timeout as usize], 1);
        assert_eq!(d.closed[CloseKind::HandshakeFailed as usize], 1);
        assert_eq!(d.closed[CloseKind::Stalled as usize], 1);
        assert_eq!(d.closed[CloseKind::Done as usize], 1);
        assert_eq!(d.request_bytes, Sum { sum: 150, count: 2 });
        assert_eq!(
            d.request_micros,
            Sum {
                sum: 3200,
                count: 2
            }
        );
        assert_eq!(d.request_micros_max, 2500);
        assert_eq!(d.conn_requests, Sum { sum: 2, count: 2 });
        // Both timeouts are in `tmo`; the detail tells them apart.
        assert_eq!(s.get(Counter::Timeouts), 2);
    }
}

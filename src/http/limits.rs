//! Every size limit on what a client sends, in one place: the server's memory per connection
//! follows from these, and the tests and fuzz targets check against the same numbers.

/// Longest request head (request line and fields); longer gets 431.
pub const MAX_HEAD: usize = 8192;
/// Largest request body, by Content-Length or chunked; larger gets 413. Bodies are read and
/// discarded, so this bounds time spent on one, not memory.
pub const MAX_BODY: u64 = 1 << 20;
/// Longest chunk-size line (size plus ignored extensions).
pub const MAX_CHUNK_LINE: usize = 1024;
/// Longest trailer section of a chunked body (trailers are consumed and ignored).
pub const MAX_TRAILERS: usize = MAX_HEAD;
/// Longest Origin reflected in CORS headers (the original's buffer size).
pub const MAX_ORIGIN: usize = 256;
/// Start of a POST body shown in the access log: one syslog message's worth (the original
/// split longer bodies into 8000-byte chunks).
pub const POST_LOG_MAX: usize = 8000;

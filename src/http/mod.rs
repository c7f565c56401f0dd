//! HTTP/1.1: request framing, classification and pre-rendered responses.

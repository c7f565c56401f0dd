//! HTTP/1.1: request framing, classification and pre-rendered responses.

pub mod assets;
pub mod body;
pub mod dispatch;
pub mod limits;
pub mod parser;
pub mod redirect;
pub mod response;
pub mod service;
pub mod setup;

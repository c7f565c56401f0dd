pub mod ca;
pub mod cache;
pub mod certgen;
pub mod prefetch;
pub mod store;

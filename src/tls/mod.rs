pub mod names;
pub mod psl;
pub mod sni;

//! Mail: rendering alerts and delivering them (SMTP or file).

pub mod render;
pub mod transport;

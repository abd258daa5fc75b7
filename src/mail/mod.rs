//! Mail: rendering alerts, the outbox payload of a mail, and delivering
//! them (SMTP or file).

pub mod payload;
pub mod render;
pub mod transport;

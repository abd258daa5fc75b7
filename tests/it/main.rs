//! Integration tests: run the real `tokenwatch` binary in temp folders, and
//! the library's edges against local stand-ins (SMTP, Apple's API).

mod account;
mod apple;
mod apple_stub;
mod calendar;
mod check;
mod cli;
mod daemon;
mod docs;
mod faults;
mod hostile;
mod idle;
mod inspect;
mod kind_views;
mod kinds;
mod layering;
mod links;
mod mail;
mod mail_html;
mod mail_transport;
mod metrics;
mod migration;
mod probe;
mod secrets;
mod silence;
mod smtp_stub;
mod systemd;
mod trust_store;
mod util;
mod webhook;
mod webhook_daemon;
mod webhook_kinds;
mod webhook_stub;

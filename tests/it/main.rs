//! Integration tests: run the real `tokenwatch` binary in temp folders.

mod check;
mod daemon;
mod cli;
mod inspect;
mod util;

//! Notifications to the service manager (`NOTIFY_SOCKET`), sent without
//! blocking. The `sd-notify` crate sends with a blocking `send`: a listener
//! that stops reading fills the socket's queue after about a dozen
//! datagrams, and the daemon's loop would then hang in its next status
//! line or watchdog ping. libsystemd sends with `MSG_DONTWAIT`; so does
//! this, and a notification that cannot be sent at once is dropped (the
//! next one says the same or more).

use std::fmt::Write as _;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::UnixDatagram;

use sd_notify::NotifyState;

/// Sends `states` as one datagram, if `NOTIFY_SOCKET` is set.
pub fn notify(states: &[NotifyState]) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let mut msg = String::new();
    for s in states {
        let _ = writeln!(msg, "{s}");
    }
    if let Err(e) = send(path.as_bytes(), msg.as_bytes()) {
        tracing::debug!(error = %e, "notification to the service manager not sent");
    }
}

fn send(path: &[u8], msg: &[u8]) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    match path.strip_prefix(b"@") {
        // An abstract socket, as systemd may hand out.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.connect_addr(&addr)?;
        }
        None => sock.connect(std::ffi::OsStr::from_bytes(path))?,
    }
    let sent = sock.send(msg)?;
    if sent == msg.len() {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::WriteZero, "incomplete write"))
    }
}

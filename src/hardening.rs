//! Process-wide protections set once at start, before any secret is read.

use std::io;

/// Makes this process non-dumpable: no core dump (a watchdog SIGABRT would
/// otherwise write the SMTP password and any bearer in flight to disk), and
/// no ptrace or `/proc/PID/mem` access by processes of the same user,
/// whose `gcore` could read the same memory. The kernel also hands the
/// process's `/proc` entries to root.
pub fn forbid_core_dumps() -> io::Result<()> {
    // Belt and braces for a kernel with fs.suid_dumpable = 2, which still
    // dumps non-dumpable processes (as root-only files). Failure is fine:
    // the unit's system call filter refuses setrlimit, and sets
    // LimitCORE=0 itself.
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on this process; `none` outlives the call.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
    // SAFETY: PR_SET_DUMPABLE takes an integer and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// Tested through the real binary (secrets::the_daemon_is_not_dumpable_...):
// making the shared unit-test process non-dumpable would change what the
// other tests may read under /proc/self.

//! The receive low-water mark (`SO_RCVLOWAT`) of the replication socket.
//!
//! While a backlog streams, the walsender sends one small message per change, and each send
//! that finds sluice waiting wakes it: the wake-up runs in the walsender's `send()` and was
//! measured at a large share of its time, so a receiver that drains the socket as fast as it
//! fills slows the server down. With the mark raised, the kernel neither wakes sluice nor
//! reports the socket readable until that many bytes are queued; sluice then reads them in
//! one go. The mark is lowered again when the stream slows (see
//! `ReplicationConnection::fill`): on Linux ≥ 4.18 lowering it signals readability at once
//! if bytes are already queued, so nothing waits for more data that may never come.
//!
//! Linux only; elsewhere the functions do nothing and every read wakes sluice as before.

use std::io;
use std::os::fd::OwnedFd;

/// Set the socket's receive low-water mark to `bytes` (at least 1).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(super) fn set(socket: &OwnedFd, bytes: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(bytes.max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `socket` is an open descriptor owned for the duration of the call; the option
    // value points to a live, properly aligned `c_int` and its length is that of a `c_int`,
    // which is what SOL_SOCKET/SO_RCVLOWAT reads. No memory is retained by the kernel.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const value).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Set the socket's receive buffer to `bytes` (the kernel doubles it, and stops tuning it
/// by itself). Used only for a same-host replication stream, whose window then closes
/// between paced reads (see `ReplicationConnection::start_copy_both`).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(super) fn set_rcvbuf(socket: &OwnedFd, bytes: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: as in `set`: an open descriptor, a live `c_int` and its length, for
    // SOL_SOCKET/SO_RCVBUF; nothing is retained.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const value).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Not Linux: the buffer stays as it is.
#[cfg(not(target_os = "linux"))]
pub(super) fn set_rcvbuf(_socket: &OwnedFd, _bytes: usize) -> io::Result<()> {
    Ok(())
}

/// Not Linux: the mark stays where it is.
#[cfg(not(target_os = "linux"))]
pub(super) fn set(_socket: &OwnedFd, _bytes: usize) -> io::Result<()> {
    Ok(())
}

//! Socket options socket2 has no method for (`SO_RCVBUFFORCE`, `IP_MTU_DISCOVER`): the one
//! `unsafe` call, kept small and in one place.

use std::io;

/// An integer socket option socket2 has no method for.
pub fn set_int(
    socket: &socket2::Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads `value` for the given length; the descriptor is open.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

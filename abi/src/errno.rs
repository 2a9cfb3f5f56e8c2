//! Xen's errno values (`xen/errno.h`) and the [`Errno`] type handlers return.
//!
//! A hypercall returns `-errno` in `rax` on failure. Handlers return
//! `Result<u64, Errno>` and the dispatcher turns that into `rax` with
//! [`encode_result`]. The values are Xen's own (they happen to match Linux's
//! on x86), listed once in the macro below, which makes both the constants
//! and the enum.

macro_rules! errnos {
    ($( $(#[$meta:meta])* $name:ident = $value:literal; )*) => {
        $( $(#[$meta])* pub const $name: i32 = $value; )*

        /// A Xen errno: the reason a hypercall failed.
        ///
        /// Variants carry Xen's names so they grep the same as the headers.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(i32)]
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub enum Errno {
            $( $(#[$meta])* $name = $value, )*
        }

        impl Errno {
            /// Every errno, in numeric order.
            pub const ALL: &'static [Errno] = &[$(Errno::$name),*];

            /// Xen's name for the errno (`"EINVAL"`).
            pub const fn name(self) -> &'static str {
                match self {
                    $( Errno::$name => stringify!($name), )*
                }
            }

            /// The errno with value `value` (positive), if Xen defines one.
            pub const fn from_i32(value: i32) -> Option<Errno> {
                match value {
                    $( $value => Some(Errno::$name), )*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    /// Operation not permitted.
    EPERM = 1;
    /// No such file or directory.
    ENOENT = 2;
    /// No such process (no such domain).
    ESRCH = 3;
    /// Interrupted system call. Xen-internal: never returned to a guest.
    EINTR = 4;
    /// I/O error.
    EIO = 5;
    /// No such device or address.
    ENXIO = 6;
    /// Argument list too long.
    E2BIG = 7;
    /// Exec format error.
    ENOEXEC = 8;
    /// Bad file number.
    EBADF = 9;
    /// No child processes.
    ECHILD = 10;
    /// Try again (alias [`EWOULDBLOCK`]).
    EAGAIN = 11;
    /// Out of memory.
    ENOMEM = 12;
    /// Permission denied.
    EACCES = 13;
    /// Bad address.
    EFAULT = 14;
    /// Device or resource busy.
    EBUSY = 16;
    /// File exists.
    EEXIST = 17;
    /// Cross-device link.
    EXDEV = 18;
    /// No such device.
    ENODEV = 19;
    /// Not a directory.
    ENOTDIR = 20;
    /// Is a directory.
    EISDIR = 21;
    /// Invalid argument.
    EINVAL = 22;
    /// File table overflow.
    ENFILE = 23;
    /// Too many open files.
    EMFILE = 24;
    /// No space left on device.
    ENOSPC = 28;
    /// Read-only file system.
    EROFS = 30;
    /// Too many links.
    EMLINK = 31;
    /// Math argument out of domain of function.
    EDOM = 33;
    /// Math result not representable.
    ERANGE = 34;
    /// Resource deadlock would occur (alias [`EDEADLOCK`]).
    EDEADLK = 35;
    /// File name too long.
    ENAMETOOLONG = 36;
    /// No record locks available.
    ENOLCK = 37;
    /// Function not implemented.
    ENOSYS = 38;
    /// Directory not empty.
    ENOTEMPTY = 39;
    /// No data available.
    ENODATA = 61;
    /// Timer expired.
    ETIME = 62;
    /// Not a data message.
    EBADMSG = 74;
    /// Value too large for defined data type.
    EOVERFLOW = 75;
    /// Illegal byte sequence.
    EILSEQ = 84;
    /// Interrupted call should be restarted. Xen-internal (hypercall
    /// continuations): never returned to a guest.
    ERESTART = 85;
    /// Socket operation on non-socket.
    ENOTSOCK = 88;
    /// Message too large.
    EMSGSIZE = 90;
    /// Operation not supported on transport endpoint.
    EOPNOTSUPP = 95;
    /// Address already in use.
    EADDRINUSE = 98;
    /// Cannot assign requested address.
    EADDRNOTAVAIL = 99;
    /// No buffer space available.
    ENOBUFS = 105;
    /// Transport endpoint is already connected.
    EISCONN = 106;
    /// Transport endpoint is not connected.
    ENOTCONN = 107;
    /// Connection timed out.
    ETIMEDOUT = 110;
    /// Connection refused.
    ECONNREFUSED = 111;
}

/// Operation would block: an alias of [`EAGAIN`].
pub const EWOULDBLOCK: i32 = EAGAIN;

/// Resource deadlock would occur: an alias of [`EDEADLK`].
pub const EDEADLOCK: i32 = EDEADLK;

impl Errno {
    /// The value a hypercall returns for this error: `-errno`.
    pub const fn as_ret(self) -> i64 {
        -(self as i32 as i64)
    }

    /// The errno a hypercall return value `ret` carries, if it is `-errno`
    /// for an errno Xen defines.
    pub const fn from_ret(ret: i64) -> Option<Errno> {
        if ret < 0 && ret > i32::MIN as i64 {
            Errno::from_i32(-ret as i32)
        } else {
            None
        }
    }

    /// Whether Xen keeps this errno internal (never returned to a guest).
    pub const fn is_internal(self) -> bool {
        matches!(self, Errno::EINTR | Errno::ERESTART)
    }
}

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.name(), *self as i32)
    }
}

/// The `rax` value for a handler's result: the value itself, or `-errno`
/// as a two's-complement `u64`.
pub const fn encode_result(result: Result<u64, Errno>) -> u64 {
    match result {
        Ok(value) => value,
        Err(e) => e.as_ret() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_return_values() {
        assert_eq!(Errno::EPERM.as_ret(), -1);
        assert_eq!(Errno::ENOSYS.as_ret(), -38);
        assert_eq!(encode_result(Err(Errno::EINVAL)), (-22i64) as u64);
        assert_eq!(encode_result(Ok(7)), 7);
    }

    #[test]
    fn round_trips() {
        for &e in Errno::ALL {
            assert_eq!(Errno::from_i32(e as i32), Some(e));
            assert_eq!(Errno::from_ret(e.as_ret()), Some(e));
        }
        assert_eq!(Errno::from_i32(15), None);
        assert_eq!(Errno::from_ret(0), None);
        assert_eq!(Errno::from_ret(22), None);
        assert_eq!(Errno::from_ret(i64::MIN), None);
    }

    #[test]
    fn all_is_sorted_and_unique() {
        assert!(Errno::ALL.windows(2).all(|w| (w[0] as i32) < (w[1] as i32)));
    }

    #[test]
    fn names() {
        assert_eq!(Errno::EINVAL.name(), "EINVAL");
        assert!(Errno::ERESTART.is_internal());
        assert!(!Errno::EAGAIN.is_internal());
    }
}

//! `console_io`: the hypervisor console.
//!
//! Every domain may write (the platform tells whose output it is); only a
//! privileged domain may read, or use any other command (`-EPERM`, checked
//! first). That is Xen's policy in a debug build (`CONFIG_VERBOSE_DEBUG`);
//! a release Xen refuses writes from domUs too.

use super::{Action, Ctx};
use crate::guest::{self, GuestPtr};
use abi::errno::Errno;
use abi::sched::{CONSOLEIO_READ, CONSOLEIO_WRITE};

/// Bytes copied per step, bounding the stack buffer.
const CHUNK: usize = 128;

/// `console_io(cmd, count, buf)`: write `count` bytes from `buf` to the
/// console, or read up to `count` pending input bytes into `buf` (returns
/// how many; 0 when there is none).
pub(super) fn console_io(ctx: &mut Ctx<'_>, [cmd, count, buf, ..]: [u64; 5]) -> Action {
    let cmd = u32::try_from(cmd);
    if cmd != Ok(CONSOLEIO_WRITE) && !ctx.domain.privileged {
        return Action::Return(Err(Errno::EPERM));
    }
    if count > i32::MAX as u64 {
        return Action::Return(Err(Errno::EINVAL));
    }
    let buf = GuestPtr(buf);
    match cmd {
        Ok(CONSOLEIO_WRITE) => {
            let mut chunk = [0u8; CHUNK];
            let mut done = 0;
            while done < count {
                let n = (count - done).min(CHUNK as u64) as usize;
                if guest::read(ctx.mem, buf.add(done), &mut chunk[..n]).is_err() {
                    return Action::Return(Err(Errno::EFAULT));
                }
                ctx.platform.console_write(ctx.domain.id, &chunk[..n]);
                done += n as u64;
            }
            Action::Return(Ok(0))
        }
        Ok(CONSOLEIO_READ) => {
            let mut chunk = [0u8; CHUNK];
            let mut done = 0;
            while done < count {
                let want = (count - done).min(CHUNK as u64) as usize;
                let got = ctx.platform.console_read(&mut chunk[..want]);
                if got == 0 {
                    break;
                }
                if guest::write(ctx.mem, buf.add(done), &chunk[..got]).is_err() {
                    return Action::Return(Err(Errno::EFAULT));
                }
                done += got as u64;
            }
            Action::Return(Ok(done))
        }
        _ => Action::Return(Err(Errno::ENOSYS)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{World, MEM_BASE};
    use super::*;
    use abi::hypercall::CONSOLE_IO;

    #[test]
    fn write_copies_the_guest_buffer_to_the_console() {
        let mut w = World::new(true);
        let text: Vec<u8> = (0..300).map(|i| b'a' + (i % 26) as u8).collect();
        guest::write(&mut w.mem, GuestPtr(MEM_BASE + 0x100), &text).unwrap();
        w.call(CONSOLE_IO, &[CONSOLEIO_WRITE.into(), 300, MEM_BASE + 0x100]);
        assert_eq!(w.ret(), 0);
        assert_eq!(w.platform.console, text);
    }

    #[test]
    fn bad_buffers_are_efault() {
        let mut w = World::new(true);
        for addr in [0, 0xffff_8000_0000_0000, MEM_BASE + 0xfff0, 0x8000_0000_0000_0000] {
            w.call(CONSOLE_IO, &[CONSOLEIO_WRITE.into(), 0x20, addr]);
            assert_eq!(w.ret(), Errno::EFAULT.as_ret(), "buffer {addr:#x}");
        }
        w.call(CONSOLE_IO, &[CONSOLEIO_WRITE.into(), u64::MAX, MEM_BASE]);
        assert_eq!(w.ret(), Errno::EINVAL.as_ret());
        w.call(CONSOLE_IO, &[7, 1, MEM_BASE]);
        assert_eq!(w.ret(), Errno::ENOSYS.as_ret());
    }

    #[test]
    fn unprivileged_domains_may_only_write() {
        let mut w = World::new(false);
        guest::write(&mut w.mem, GuestPtr(MEM_BASE), b"domU").unwrap();
        w.call(CONSOLE_IO, &[CONSOLEIO_WRITE.into(), 4, MEM_BASE]);
        assert_eq!(w.ret(), 0);
        assert_eq!(w.platform.console, b"domU");
        w.platform.input = b"secret".to_vec();
        for cmd in [CONSOLEIO_READ.into(), 7, 1 << 32] {
            w.call(CONSOLE_IO, &[cmd, 16, MEM_BASE]);
            assert_eq!(w.ret(), Errno::EPERM.as_ret(), "cmd {cmd}");
        }
        w.call(CONSOLE_IO, &[CONSOLEIO_READ.into(), u64::MAX, 0]);
        assert_eq!(w.ret(), Errno::EPERM.as_ret(), "checked before the arguments");
        assert_eq!(w.platform.input, b"secret", "nothing read");
        w.call(CONSOLE_IO, &[CONSOLEIO_WRITE.into(), 4, 0]);
        assert_eq!(w.ret(), Errno::EFAULT.as_ret());
    }

    #[test]
    fn read_returns_pending_input() {
        let mut w = World::new(true);
        w.platform.input = b"hello".to_vec();
        w.call(CONSOLE_IO, &[CONSOLEIO_READ.into(), 3, MEM_BASE]);
        assert_eq!(w.ret(), 3);
        assert_eq!(&w.mem.bytes[..3], b"hel");
        w.call(CONSOLE_IO, &[CONSOLEIO_READ.into(), 16, MEM_BASE]);
        assert_eq!(w.ret(), 2);
        w.call(CONSOLE_IO, &[CONSOLEIO_READ.into(), 16, MEM_BASE]);
        assert_eq!(w.ret(), 0);
    }
}

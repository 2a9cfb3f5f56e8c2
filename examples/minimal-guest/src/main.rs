//! The smallest PV guest: Xen ELF notes, one line through `console_io`,
//! then `SCHEDOP_shutdown(poweroff)`. It uses only the `abi` crate (feature
//! `guest`), with hypercalls by raw `syscall`, so it needs no hypercall
//! page, and it runs on the domain builder's one-page boot stack.
//!
//! On the host this file builds to a program that says it is an image.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
mod guest {
    use abi::elfnote::{
        XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_GUEST_OS, XEN_ELFNOTE_LOADER, XEN_ELFNOTE_PADDR_OFFSET, XEN_ELFNOTE_VIRT_BASE,
        XEN_ELFNOTE_XEN_VERSION,
    };
    use abi::guest::{Hypercalls, Syscall};
    use abi::sched::ShutdownReason;
    use core::fmt::Write;

    /// One "Xen" note: namesz, descsz, type, name, then the descriptor.
    macro_rules! note {
        ($n:literal, $ty:literal, $desc:literal) => {
            concat!(
                ".balign 4\n.long 4\n.long 2",
                $n,
                "f - 1",
                $n,
                "f\n.long ",
                $ty,
                "\n.asciz \"Xen\"\n1",
                $n,
                ":\n",
                $desc,
                "\n2",
                $n,
                ":\n.balign 4\n"
            )
        };
    }

    core::arch::global_asm!(
        ".pushsection .note.Xen, \"a\", @note",
        note!("4", "{os}", ".asciz \"minimal-guest\""),
        note!("5", "{loader}", ".asciz \"generic\""),
        note!("6", "{xen}", ".asciz \"xen-3.0\""),
        note!("7", "{base}", ".quad 0xFFFFFFFF80000000"),
        note!("8", "{paddr}", ".quad 0"),
        note!("9", "{entry}", ".quad _start"),
        ".popsection",
        ".globl _start",
        "_start:",
        "    call {main}",
        "    ud2",
        os = const XEN_ELFNOTE_GUEST_OS,
        loader = const XEN_ELFNOTE_LOADER,
        xen = const XEN_ELFNOTE_XEN_VERSION,
        base = const XEN_ELFNOTE_VIRT_BASE,
        paddr = const XEN_ELFNOTE_PADDR_OFFSET,
        entry = const XEN_ELFNOTE_ENTRY,
        main = sym main,
    );

    /// A line of at most 80 bytes.
    struct Line([u8; 80], usize);

    impl Write for Line {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let n = s.len().min(self.0.len() - self.1);
            self.0[self.1..self.1 + n].copy_from_slice(&s.as_bytes()[..n]);
            self.1 += n;
            Ok(())
        }
    }

    extern "C" fn main() -> ! {
        // SAFETY: this image only ever runs as a PV guest kernel.
        let xen = Hypercalls::new(unsafe { Syscall::new() });
        let v = xen.xen_version().unwrap_or(0);
        let mut line = Line([0; 80], 0);
        let _ = writeln!(line, "minimal-guest: hello from a PV guest on Xen {}.{}", v >> 16, v & 0xffff);
        let _ = xen.console_write(&line.0[..line.1]);
        let _ = xen.sched_shutdown(ShutdownReason::Poweroff);
        loop {
            core::hint::spin_loop();
        }
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        // SAFETY: as in main.
        let _ = Hypercalls::new(unsafe { Syscall::new() }).sched_shutdown(ShutdownReason::Crash);
        loop {
            core::hint::spin_loop();
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("minimal-guest is a PV kernel image for x86_64-unknown-none; see `cargo xtask build`");
    std::process::exit(2);
}

//! `blk-bench`: placeholder, filled in below.

/// `blk-bench`.
pub fn run() -> ! {
    super::finish(Err(guest_kernel::msg!("blk-bench is not written yet")), "")
}

//! The hypervisor image: boot, bring up the CPU, account memory, and run.
//!
//! Only this binary touches hardware; the portable logic it drives lives in
//! the `hv` library. On the host this file builds to a program that says so.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod clock;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod domains;
#[cfg(target_os = "none")]
mod grants;
#[cfg(target_os = "none")]
mod lifecycle;
#[cfg(target_os = "none")]
mod memory;
#[cfg(target_os = "none")]
mod run;
#[cfg(target_os = "none")]
mod setup;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hv is a bare-metal image for x86_64-unknown-none; boot it with `cargo xtask run`");
    std::process::exit(2);
}

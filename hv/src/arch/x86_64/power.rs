//! Ending the machine: ACPI power-off, or the debug-exit device for failures.

use super::cpu::{halt_forever, outb, outw};
use hv::exit::Exit;

/// QEMU's `isa-debug-exit` device, as `cargo xtask` configures it.
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// PM1a control register of the PIIX4/ICH9 ACPI block as SeaBIOS sets it up.
const PM1A_CNT: u16 = 0x604;
/// SLP_EN with SLP_TYP 0: QEMU's soft power-off (S5).
const SLP_EN_S5: u16 = 0x2000;

/// Stops the machine the way `exit` asks. If the platform ignores us (no
/// debug-exit device, no ACPI), the CPU halts for good.
pub fn stop(exit: Exit) -> ! {
    match exit.debug_exit_code() {
        None => outw(PM1A_CNT, SLP_EN_S5),
        Some(code) => outb(DEBUG_EXIT_PORT, code),
    }
    halt_forever()
}

//! The 16550 UART on COM1: the hypervisor's console.

use super::cpu::{inb, outb};

const COM1: u16 = 0x3f8;
const THR: u16 = 0; // transmit holding register
const IER: u16 = 1; // interrupt enable
const FCR: u16 = 2; // FIFO control
const LCR: u16 = 3; // line control
const MCR: u16 = 4; // modem control
const LSR: u16 = 5; // line status
const LSR_THR_EMPTY: u8 = 1 << 5;

/// Programs COM1 for 115200 8N1 with FIFOs, interrupts off.
pub fn init() {
    outb(COM1 + IER, 0x00);
    outb(COM1 + LCR, 0x80); // divisor latch
    outb(COM1, 1); // 115200 baud
    outb(COM1 + 1, 0);
    outb(COM1 + LCR, 0x03); // 8N1
    outb(COM1 + FCR, 0xc7);
    outb(COM1 + MCR, 0x0b);
}

/// Writes one byte, waiting (boundedly) for room in the transmitter.
pub fn write_byte(b: u8) {
    // A missing or wedged UART must not hang the hypervisor.
    for _ in 0..100_000 {
        if inb(COM1 + LSR) & LSR_THR_EMPTY != 0 {
            break;
        }
    }
    outb(COM1 + THR, b);
}

/// Writes bytes, turning `\n` into `\r\n` for terminals.
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            write_byte(b'\r');
        }
        write_byte(b);
    }
}

/// Reads one pending input byte, if any.
pub fn read_byte() -> Option<u8> {
    const LSR_DATA_READY: u8 = 1 << 0;
    (inb(COM1 + LSR) & LSR_DATA_READY != 0).then(|| inb(COM1 + THR))
}

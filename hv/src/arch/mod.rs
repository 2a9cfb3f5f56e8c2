//! Architecture support: selects the one architecture we run on.

mod x86_64;

pub use self::x86_64::*;

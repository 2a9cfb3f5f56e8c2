//! Versions: this crate's own ABI version and the Xen version it implements.
//!
//! # Policy
//!
//! Every number and layout that comes from Xen is Xen 4.17's and never
//! changes. Anything this project adds that Xen does not have gets its own
//! numbers outside Xen's ranges, and is versioned by [`ABI_VERSION`]:
//!
//! - a **minor** bump adds something (a constant, a struct, an operation) and
//!   keeps everything that was there;
//! - a **major** bump changes or removes something.
//!
//! A consumer built against `major.minor` works with any provider of the same
//! major and an equal or greater minor ([`AbiVersion::is_compatible_with`]).
//! `tests/xen_layout.rs` enforces the Xen side: it compares every struct,
//! field and constant here with Xen's C headers (SPEC.md §2).

/// A version of this crate's ABI: `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AbiVersion {
    /// Bumped when something is changed or removed.
    pub major: u16,
    /// Bumped when something is added.
    pub minor: u16,
}

impl AbiVersion {
    /// Whether a provider of version `self` serves a consumer that was built
    /// against `required`: same major, and at least the required minor.
    pub const fn is_compatible_with(self, required: AbiVersion) -> bool {
        self.major == required.major && self.minor >= required.minor
    }

    /// The version as one word: `major << 16 | minor`.
    pub const fn packed(self) -> u32 {
        ((self.major as u32) << 16) | self.minor as u32
    }
}

/// This crate's ABI version (see the module docs for the bump rules).
pub const ABI_VERSION: AbiVersion = AbiVersion { major: 0, minor: 1 };

/// The Xen major version the hypervisor claims to be.
pub const XEN_VERSION_MAJOR: u16 = 4;

/// The Xen minor version the hypervisor claims to be.
pub const XEN_VERSION_MINOR: u16 = 17;

/// What `xen_version(XENVER_version)` returns: `major << 16 | minor`.
pub const XEN_VERSION_PACKED: u32 = ((XEN_VERSION_MAJOR as u32) << 16) | XEN_VERSION_MINOR as u32;

/// Xen's public interface version for 4.17 (`__XEN_LATEST_INTERFACE_VERSION__`
/// in `xen-compat.h`): the interface this hypervisor implements.
pub const INTERFACE_VERSION: u32 = 0x0004_0e00;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility_needs_same_major_and_enough_minor() {
        let v = AbiVersion { major: 1, minor: 3 };
        assert!(v.is_compatible_with(AbiVersion { major: 1, minor: 0 }));
        assert!(v.is_compatible_with(AbiVersion { major: 1, minor: 3 }));
        assert!(!v.is_compatible_with(AbiVersion { major: 1, minor: 4 }));
        assert!(!v.is_compatible_with(AbiVersion { major: 0, minor: 3 }));
        assert!(!v.is_compatible_with(AbiVersion { major: 2, minor: 0 }));
    }

    #[test]
    fn packed_versions() {
        assert_eq!(XEN_VERSION_PACKED, 0x0004_0011);
        assert_eq!(AbiVersion { major: 2, minor: 5 }.packed(), 0x0002_0005);
    }
}

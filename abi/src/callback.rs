//! `callback_op`: registering the guest's event, failsafe and syscall entry points.

/// Callback type: event-channel upcall.
pub const CALLBACKTYPE_EVENT: u16 = 0;
/// Callback type: failsafe (the hypervisor could not restore guest state).
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;
/// Callback type: `syscall` from 64-bit guest user mode.
pub const CALLBACKTYPE_SYSCALL: u16 = 2;
/// Callback type: the old number of `sysenter` (before interface 0x00030207).
pub const CALLBACKTYPE_SYSENTER_DEPRECATED: u16 = 3;
/// Callback type: NMI delivery.
pub const CALLBACKTYPE_NMI: u16 = 4;
/// Callback type: `sysenter` from 32-bit guest user mode.
pub const CALLBACKTYPE_SYSENTER: u16 = 5;
/// Callback type: `syscall` from 32-bit guest user mode.
pub const CALLBACKTYPE_SYSCALL32: u16 = 7;

/// `callback_register.flags`: mask events on entry to the callback.
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

/// `callback_op` command: register a callback ([`CallbackRegister`]).
pub const CALLBACKOP_REGISTER: u32 = 0;
/// `callback_op` command: unregister a callback ([`CallbackUnregister`]).
pub const CALLBACKOP_UNREGISTER: u32 = 1;

abi_enum! {
    /// The `type` of a callback registration.
    pub enum CallbackType: u16 {
        /// [`CALLBACKTYPE_EVENT`].
        Event = CALLBACKTYPE_EVENT,
        /// [`CALLBACKTYPE_FAILSAFE`].
        Failsafe = CALLBACKTYPE_FAILSAFE,
        /// [`CALLBACKTYPE_SYSCALL`].
        Syscall = CALLBACKTYPE_SYSCALL,
        /// [`CALLBACKTYPE_SYSENTER_DEPRECATED`].
        SysenterDeprecated = CALLBACKTYPE_SYSENTER_DEPRECATED,
        /// [`CALLBACKTYPE_NMI`].
        Nmi = CALLBACKTYPE_NMI,
        /// [`CALLBACKTYPE_SYSENTER`].
        Sysenter = CALLBACKTYPE_SYSENTER,
        /// [`CALLBACKTYPE_SYSCALL32`].
        Syscall32 = CALLBACKTYPE_SYSCALL32,
    }
}

/// `struct callback_register` (16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CallbackRegister {
    /// IN: `CALLBACKTYPE_*`.
    pub type_: u16,
    /// IN: `CALLBACKF_*`.
    pub flags: u16,
    /// Padding (implicit in C).
    pub _pad0: u32,
    /// IN: entry point.
    pub address: u64,
}

assert_layout!(CallbackRegister, size = 16, align = 8, {
    type_ @ 0, flags @ 2, _pad0 @ 4, address @ 8,
});

/// `struct callback_unregister` (4 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CallbackUnregister {
    /// IN: `CALLBACKTYPE_*`.
    pub type_: u16,
    /// Unused.
    pub _unused: u16,
}

assert_layout!(CallbackUnregister, size = 4, align = 2, { type_ @ 0, _unused @ 2 });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_type_conversion() {
        assert_eq!(CallbackType::try_from(7), Ok(CallbackType::Syscall32));
        assert!(CallbackType::try_from(6).is_err());
        for &t in CallbackType::ALL {
            assert_eq!(CallbackType::try_from(u16::from(t)), Ok(t));
        }
    }
}

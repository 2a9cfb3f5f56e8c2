//! The PV guest kernel: boots from Xen's `start_info`, asks the hypervisor
//! for everything privileged through hypercalls, and runs unmodified on this
//! hypervisor and on Xen 4.17.
//!
//! Not written yet: it arrives with PV guest support (SPEC.md §1, §3.7).
#![no_std]

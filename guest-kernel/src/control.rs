//! `control count=<N>`: the control hypercalls, as a toolstack uses them.
//!
//! Prints one `CTL <name> ok` or `CTL <name> FAIL <why>` line per check and
//! `CTL pass=N fail=M`, then powers off (crashes if anything failed):
//!
//! - `physinfo`: the machine's memory, which must add up;
//! - `readconsole`: the hypervisor's console ring holds its banner;
//! - `errors`: a wrong interface version is `EACCES`, pausing or
//!   destroying itself `EINVAL`, an unknown domain `ESRCH`, HVM `EINVAL`;
//! - `lifecycle`: a created domain is reported paused with its handle,
//!   pauses nest and unpause undoes them, destroy makes it disappear;
//! - `cycles`: `count` cycles of create, `max_mem` and `populate_physmap`
//!   of 16 pages (one more is refused), destroy; afterwards the free
//!   memory is exactly what it was (every frame came back) and ids were
//!   reused;
//! - `grants`: dom0 sets up a created domain's grant table, writes an
//!   entry granting it one of that domain's frames (as a toolstack writes
//!   the console and xenstore grants), maps the grant, destroys the
//!   domain while it is mapped (the frame stays readable, the id is not
//!   reused), unmaps it, and then every frame has come back and the id is
//!   free again.
//!
//! In an unprivileged domain every call is refused: the workload checks
//! that it gets `EPERM` for both hypercalls (`CTL refused ok`).

use abi::domctl::*;
use abi::errno::Errno;
use abi::sched::ShutdownReason;
use abi::sysctl::*;
use guest_kernel::hypercall::hv;
use guest_kernel::layout::SCRATCH_BASE;
use guest_kernel::mm;
use guest_kernel::msg;
use guest_kernel::println;
use guest_kernel::runtime::{shutdown, start_info};
use guest_kernel::text::{Escaped, Msg};

use crate::build::ops::{free_pages, physinfo, Dom0Ops};

fn domctl(op: &mut XenDomctl) -> Result<u64, Errno> {
    // SAFETY: none of the operations used here carries a guest handle, and
    // none acts on this domain except the ones checked to be refused.
    unsafe { hv().domctl(op) }
}

/// `domctl(createdomain)` of an empty domain with handle bytes `handle`, as
/// a toolstack starts one: with id `id`, or any free id for 0.
pub(crate) fn create_empty(id: u16, handle: u8) -> Result<u16, Errno> {
    let cfg = XenDomctlCreatedomain { max_vcpus: 1, max_evtchn_port: 1023, handle: [handle; 16], ..Default::default() };
    let mut op = XenDomctl::createdomain(id, &cfg);
    domctl(&mut op)?;
    Ok(op.domain)
}

fn create(handle: u8) -> Result<u16, Errno> {
    create_empty(0, handle)
}

fn info(dom: u16) -> Result<(u16, XenDomctlGetdomaininfo), Errno> {
    let mut op = XenDomctl::getdomaininfo(dom);
    domctl(&mut op)?;
    Ok((op.domain, op.u_getdomaininfo()))
}

fn expect(what: &str, got: Result<u64, Errno>, want: Errno) -> Result<(), Msg> {
    match got {
        Err(e) if e == want => Ok(()),
        other => Err(msg!("{what}: {other:?}, want {want:?}")),
    }
}

type Check = fn(u64) -> Result<(), Msg>;

fn check_physinfo(_: u64) -> Result<(), Msg> {
    let p = physinfo().map_err(|e| msg!("physinfo: {e:?}"))?;
    if p.total_pages == 0 || p.free_pages > p.total_pages || p.nr_cpus != 1 {
        return Err(msg!("total {} free {} cpus {}", p.total_pages, p.free_pages, p.nr_cpus));
    }
    println!("INFO physinfo total_pages={} free_pages={} cpu_khz={}", p.total_pages, p.free_pages, p.cpu_khz);
    Ok(())
}

fn check_readconsole(_: u64) -> Result<(), Msg> {
    let mut buf = [0u8; 4096];
    let rc = XenSysctlReadconsole { count: buf.len() as u32, buffer: buf.as_mut_ptr() as u64, ..Default::default() };
    let mut op = XenSysctl::readconsole(&rc);
    // SAFETY: `buffer` is `buf`, writable for `count` bytes.
    unsafe { hv().sysctl(&mut op) }.map_err(|e| msg!("readconsole: {e:?}"))?;
    let n = op.u_readconsole().count as usize;
    let text = &buf[..n.min(buf.len())];
    if !text.windows(7).any(|w| w == b"(HV) hv") {
        return Err(msg!("no banner in {} bytes: {}", n, Escaped(&text[..n.min(80)])));
    }
    Ok(())
}

fn check_errors(_: u64) -> Result<(), Msg> {
    let mut op = XenDomctl::getdomaininfo(0);
    op.interface_version = XEN_DOMCTL_INTERFACE_VERSION - 1;
    expect("old domctl version", domctl(&mut op), Errno::EACCES)?;
    let mut op = XenSysctl::physinfo();
    op.interface_version = XEN_SYSCTL_INTERFACE_VERSION + 1;
    // SAFETY: physinfo carries no guest handle.
    expect("new sysctl version", unsafe { hv().sysctl(&mut op) }, Errno::EACCES)?;
    expect("pause itself", domctl(&mut XenDomctl::pausedomain(0)), Errno::EINVAL)?;
    expect("destroy itself", domctl(&mut XenDomctl::destroydomain(0)), Errno::EINVAL)?;
    expect("destroy nobody", domctl(&mut XenDomctl::destroydomain(0x7000)), Errno::ESRCH)?;
    expect("info beyond every domain", info(0x7000).map(|_| 0), Errno::ESRCH)?;
    let hvm = XenDomctlCreatedomain { flags: XEN_DOMCTL_CDF_HVM, max_vcpus: 1, ..Default::default() };
    expect("create HVM", domctl(&mut XenDomctl::createdomain(0, &hvm)), Errno::EINVAL)?;
    expect("unknown command", domctl(&mut XenDomctl::new(XEN_DOMCTL_SHADOW_OP, 0)), Errno::ENOSYS)?;
    Ok(())
}

fn check_lifecycle(_: u64) -> Result<(), Msg> {
    let fail = |what: &str, e: Errno| msg!("{what}: {e:?}");
    let d = create(0xab).map_err(|e| fail("create", e))?;
    let (id, i) = info(d).map_err(|e| fail("getdomaininfo", e))?;
    if id != d || i.flags & XEN_DOMINF_PAUSED == 0 || i.handle != [0xab; 16] {
        return Err(msg!("d{d}: reported as d{id} flags {:#x} handle {:?}", i.flags, i.handle));
    }
    domctl(&mut XenDomctl::max_mem(d, 16 * 1024)).map_err(|e| fail("max_mem", e))?;
    let (_, i) = info(d).map_err(|e| fail("getdomaininfo", e))?;
    if i.max_pages != 4096 {
        return Err(msg!("max_mem 16 MiB gave max_pages {}", i.max_pages));
    }
    domctl(&mut XenDomctl::pausedomain(d)).map_err(|e| fail("pause", e))?;
    domctl(&mut XenDomctl::unpausedomain(d)).map_err(|e| fail("unpause once", e))?;
    domctl(&mut XenDomctl::unpausedomain(d)).map_err(|e| fail("unpause the creation pause", e))?;
    expect("unpause an unpaused domain", domctl(&mut XenDomctl::unpausedomain(d)), Errno::EINVAL)?;
    let (_, i) = info(d).map_err(|e| fail("getdomaininfo", e))?;
    if i.flags & XEN_DOMINF_PAUSED != 0 {
        return Err(msg!("still paused: flags {:#x}", i.flags));
    }
    domctl(&mut XenDomctl::destroydomain(d)).map_err(|e| fail("destroy", e))?;
    match info(d) {
        Ok((id, _)) if id == d => Err(msg!("d{d} still reported after destroy")),
        _ => Ok(()),
    }
}

/// Pages each cycle's domain gets.
const CYCLE_PAGES: u64 = 16;

/// Gives domain `d` [`CYCLE_PAGES`] pages, as a builder would, and checks
/// it holds them.
fn give_memory(d: u16) -> Result<(), Msg> {
    domctl(&mut XenDomctl::max_mem(d, CYCLE_PAGES * 4)).map_err(|e| msg!("max_mem: {e:?}"))?;
    let mut extents = [0u64; CYCLE_PAGES as usize];
    for (pfn, e) in extents.iter_mut().enumerate() {
        *e = pfn as u64;
    }
    let done = hv().populate_physmap(d, &mut extents).map_err(|e| msg!("populate_physmap: {e:?}"))?;
    let more = hv().populate_physmap(d, &mut [CYCLE_PAGES]).map_err(|e| msg!("populate_physmap: {e:?}"))?;
    let (_, i) = info(d).map_err(|e| msg!("getdomaininfo: {e:?}"))?;
    if done != CYCLE_PAGES || more != 0 || i.tot_pages != CYCLE_PAGES {
        return Err(msg!("populated {done}, then {more} beyond max_mem; holds {}", i.tot_pages));
    }
    Ok(())
}

fn check_cycles(count: u64) -> Result<(), Msg> {
    let before = free_pages().map_err(|e| msg!("physinfo: {e:?}"))?;
    let mut ids = [false; 64];
    for n in 0..count {
        let d = create(n as u8).map_err(|e| msg!("cycle {n}: create: {e:?}"))?;
        ids[usize::from(d) % 64] = true;
        give_memory(d).map_err(|e| msg!("cycle {n}: d{d}: {e}"))?;
        domctl(&mut XenDomctl::destroydomain(d)).map_err(|e| msg!("cycle {n}: destroy d{d}: {e:?}"))?;
    }
    let after = free_pages().map_err(|e| msg!("physinfo: {e:?}"))?;
    let distinct = ids.iter().filter(|&&b| b).count();
    println!("INFO cycles count={count} free_before={before} free_after={after} distinct_ids={distinct}");
    if after != before {
        return Err(msg!("{} frames not returned", before.abs_diff(after)));
    }
    Ok(())
}

/// Where `grants` maps the granted frame: an empty 2 MiB of the scratch
/// region, clear of the builder's page.
const GRANT_VA: u64 = SCRATCH_BASE + 70 * (2 << 20);

fn check_grants(_: u64) -> Result<(), Msg> {
    use abi::grant_table::*;
    mm::init().map_err(|e| msg!("mm::init: {e}"))?;
    mm::l1_table(GRANT_VA).map_err(|e| msg!("the scratch L1: {e}"))?;
    let mut ops = Dom0Ops::new().map_err(|e| msg!("the foreign scratch page: {e}"))?;
    // Our own grant state (made on first use, kept for our life) first: a
    // map of a reference past our table makes it and maps nothing.
    let mut warm =
        [GnttabMapGrantRef { host_addr: GRANT_VA, flags: GNTMAP_HOST_MAP, ref_: 1 << 20, ..Default::default() }];
    // SAFETY: refused (GNTST_bad_gntref): nothing is mapped.
    unsafe { hv().gnttab_map_grant_ref(&mut warm) }.map_err(|e| msg!("map_grant_ref: {e:?}"))?;
    if warm[0].status != GNTST_BAD_GNTREF {
        return Err(msg!("map of reference 2^20: status {}", warm[0].status));
    }
    let before = free_pages().map_err(|e| msg!("physinfo: {e:?}"))?;
    let d = create(0x67).map_err(|e| msg!("create: {e:?}"))?;
    domctl(&mut XenDomctl::max_mem(d, 64)).map_err(|e| msg!("max_mem: {e:?}"))?;
    let mut mfns = [0u64, 1];
    let n = hv().populate_physmap(d, &mut mfns).map_err(|e| msg!("populate_physmap: {e:?}"))?;
    let mut table = [0u64; 1];
    let st = hv().gnttab_setup_table(d, &mut table).map_err(|e| msg!("setup_table(d{d}): {e:?}"))?;
    if n != 2 || st != GNTST_OKAY {
        return Err(msg!("d{d}: populated {n}, setup_table status {st}"));
    }
    // Its frame holds a pattern; its entry 3 grants the frame to us.
    let (frame, entry) = (mfns[0], u64::from(GTF_PERMIT_ACCESS) | mfns[0] << 32);
    let write = |ops: &mut Dom0Ops, mfn: u64, at: usize, value: u64| {
        ops.with_foreign_frame(d, mfn, |p| {
            // SAFETY: the foreign frame is mapped at `p` for the closure;
            // `at` < 512 keeps the u64 inside it.
            let slot = unsafe { p.cast::<u64>().add(at) };
            // SAFETY: an aligned u64 in that frame, written as shared memory.
            unsafe { slot.write_volatile(value) }
        })
    };
    write(&mut ops, frame, 5, 0x5a5a_1234).map_err(|e| msg!("writing d{d}'s frame: {e:?}"))?;
    write(&mut ops, table[0], 3, entry).map_err(|e| msg!("writing d{d}'s grant entry: {e:?}"))?;
    let mut op =
        [GnttabMapGrantRef { host_addr: GRANT_VA, flags: GNTMAP_HOST_MAP, ref_: 3, dom: d, ..Default::default() }];
    // SAFETY: GRANT_VA is an unused scratch page.
    unsafe { hv().gnttab_map_grant_ref(&mut op) }.map_err(|e| msg!("map_grant_ref: {e:?}"))?;
    if op[0].status != GNTST_OKAY || op[0].dev_bus_addr != frame << 12 {
        return Err(msg!("map_grant_ref: status {} dev_bus_addr {:#x}", op[0].status, op[0].dev_bus_addr));
    }
    let read = || {
        // SAFETY: the grant is mapped at GRANT_VA (read as shared memory);
        // word 5 is inside the page.
        unsafe { (GRANT_VA as *const u64).wrapping_add(5).read_volatile() }
    };
    let seen = read();
    // The granter is destroyed while its grant is mapped: what is mapped
    // stays, and so does its id.
    domctl(&mut XenDomctl::destroydomain(d)).map_err(|e| msg!("destroy d{d}: {e:?}"))?;
    let after_destroy = read();
    let gone = !matches!(info(d), Ok((id, _)) if id == d);
    let held = free_pages().map_err(|e| msg!("physinfo: {e:?}"))?;
    let other = create(0x68).map_err(|e| msg!("create after destroy: {e:?}"));
    if let Ok(o) = other {
        let _ = domctl(&mut XenDomctl::destroydomain(o));
    }
    let mut un = [GnttabUnmapGrantRef { host_addr: GRANT_VA, handle: op[0].handle, ..Default::default() }];
    // SAFETY: nothing references the page at GRANT_VA.
    unsafe { hv().gnttab_unmap_grant_ref(&mut un) }.map_err(|e| msg!("unmap_grant_ref: {e:?}"))?;
    let after = free_pages().map_err(|e| msg!("physinfo: {e:?}"))?;
    // Its id can be given out again.
    let again = create_empty(d, 0).map_err(|e| msg!("create d{d} again: {e:?}"))?;
    domctl(&mut XenDomctl::destroydomain(again)).map_err(|e| msg!("destroy d{again}: {e:?}"))?;
    let last = free_pages().map_err(|e| msg!("physinfo: {e:?}"))?;
    println!(
        "INFO grants d{d} free_before={before} while_mapped={held} after_unmap={after} other_id={other:?} unmap_status={}",
        un[0].status
    );
    if (seen, after_destroy) != (0x5a5a_1234, 0x5a5a_1234) || !gone {
        return Err(msg!("read {seen:#x}, then {after_destroy:#x} after destroy; d{d} gone: {gone}"));
    }
    if held >= before || other.as_ref().is_ok_and(|&o| o == d) {
        return Err(msg!("destroyed while mapped: {} frames held, new id {other:?}", before.saturating_sub(held)));
    }
    if un[0].status != GNTST_OKAY || after != before || last != before {
        return Err(msg!("unmap status {}, then {} frames not returned", un[0].status, before.abs_diff(after)));
    }
    Ok(())
}

/// Runs the checks and powers off (crashes if one failed).
pub fn run(count: u64) -> ! {
    if start_info().flags & abi::start_info::SIF_PRIVILEGED == 0 {
        let d = domctl(&mut XenDomctl::getdomaininfo(0));
        // SAFETY: physinfo carries no guest handle.
        let s = unsafe { hv().sysctl(&mut XenSysctl::physinfo()) };
        match (d, s) {
            (Err(Errno::EPERM), Err(Errno::EPERM)) => println!("CTL refused ok"),
            other => println!("CTL refused FAIL {other:?}"),
        }
        shutdown(ShutdownReason::Poweroff)
    }
    let checks: [(&str, Check); 6] = [
        ("physinfo", check_physinfo),
        ("readconsole", check_readconsole),
        ("errors", check_errors),
        ("lifecycle", check_lifecycle),
        ("cycles", check_cycles),
        ("grants", check_grants),
    ];
    let (mut pass, mut fail) = (0, 0);
    for (name, check) in checks {
        match check(count) {
            Ok(()) => {
                pass += 1;
                println!("CTL {name} ok");
            }
            Err(why) => {
                fail += 1;
                println!("CTL {name} FAIL {why}");
            }
        }
    }
    println!("CTL pass={pass} fail={fail}");
    shutdown(if fail == 0 { ShutdownReason::Poweroff } else { ShutdownReason::Crash })
}

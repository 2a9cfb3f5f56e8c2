//! The credit scheduler: which vCPU runs next on a physical CPU, and for how long.
//!
//! A weighted fair-share scheduler in the manner of Xen's credit scheduler
//! (`common/sched_credit.c`), written as a pure data structure driven by
//! time: the caller passes the current system time in nanoseconds to
//! [`Scheduler::account`] and [`Scheduler::schedule`]; nothing here reads a
//! clock, programs a timer or switches a context.
//!
//! # Policy
//!
//! - **Credits** are nanoseconds of CPU time. Every accounting period
//!   ([`Config::period_ns`], 30 ms) hands out one period of CPU time among
//!   the *active* domains in proportion to their weights (1..=65535,
//!   default 256), split equally among each domain's active vCPUs. A vCPU
//!   is active for a period if it wanted the CPU at some point in it
//!   (runnable, or woken, while its domain was unpaused). Running burns
//!   credit one for one with elapsed time.
//! - **Bounds**: a vCPU's credit stays within ±[`Scheduler::credit_bound`]
//!   (one period of CPU time), so a vCPU that blocks or idles cannot save up
//!   more than one period, and debt beyond a period is forgotten. Credit a
//!   full vCPU cannot take at a refill goes to the active vCPUs that are not
//!   full, again by weight, so time that light domains (event-driven,
//!   yielding) leave is shared by weight among the busy ones (Xen instead
//!   drops full vCPUs from the active set for a while).
//! - **Priorities**: [`Priority::Boost`] (just woken from a block while
//!   holding credit), then [`Priority::Under`] (credit left), then
//!   [`Priority::Over`] (none left). Within a priority the order is
//!   round-robin: a vCPU joins the tail of the queue when it wakes, comes
//!   online, or leaves the CPU.
//! - **Preemption**: the running vCPU keeps the CPU until its time slice
//!   ([`Config::tslice_ns`], 30 ms) ends, it blocks, yields or is paused, or
//!   a vCPU of strictly higher priority is eligible. A decision's
//!   `slice_ns` also ends early when an Under vCPU's credit runs out (no
//!   sooner than [`Config::min_slice_ns`]), a boost ends, a cap's budget
//!   runs out, or the accounting period ends, so priorities are re-examined
//!   exactly when they can change.
//! - **Boost**: a vCPU woken from a block with credit left runs before every
//!   Under and Over vCPU, for at most [`Config::boost_ns`] of CPU time, which
//!   it pays for in credit like any other running. A vCPU without credit
//!   gets no boost, so waking often cannot buy more than the domain's share.
//! - **Yield**: the yielding vCPU goes to the tail of its priority and is
//!   passed over in the next decision whenever anything else is eligible,
//!   whatever that one's priority (Xen likewise puts a yielder behind one
//!   lower-priority vCPU).
//! - **Cap**: a domain capped at `c` percent runs at most `c`% of each
//!   accounting period (exactly: decisions end when the budget does); then
//!   its vCPUs are *parked* until the next period, and the CPU idles if
//!   nothing else is eligible. Cap 0 means no cap.
//! - **Pause** nests: a domain with a non-zero pause count has no vCPU
//!   chosen and earns no credit.
//!
//! Every operation is at worst linear in the number of vCPU and domain
//! slots; catching up on missed accounting periods is bounded by
//! [`MAX_CATCHUP_PERIODS`]. Capacity is fixed by the const parameters, so
//! the scheduler needs no heap and can live in a `static`.
//!
//! The scheduler models one physical CPU: one run queue, one running vCPU.
//! To grow to several CPUs, the per-CPU part ([`Scheduler::current`], the
//! slice deadline) becomes an array indexed by CPU, each vCPU gets an
//! affinity and a run-queue index, and a period hands out `period × CPUs`
//! of credit; the accounting itself stays global.

use crate::mm::frame::DomId;
use abi::errno::Errno;

#[cfg(test)]
mod tests;

/// Xen's default domain weight.
pub const DEFAULT_WEIGHT: u16 = 256;
/// Default time slice: Xen's credit scheduler default, 30 ms.
pub const DEFAULT_TSLICE_NS: u64 = 30_000_000;
/// Default accounting period: as in Xen, 30 ms (three 10 ms ticks).
pub const DEFAULT_PERIOD_NS: u64 = 30_000_000;
/// Default shortest slice cut short by running out of credit: 1 ms, Xen's
/// default rate limit.
pub const DEFAULT_MIN_SLICE_NS: u64 = 1_000_000;
/// Default longest boost: 10 ms, one Xen tick (Xen drops a running vCPU's
/// boost at the next tick).
pub const DEFAULT_BOOST_NS: u64 = 10_000_000;
/// Shortest time slice or period a [`Config`] may set: 100 µs.
pub const MIN_CONFIG_NS: u64 = 100_000;
/// Longest time slice or period a [`Config`] may set: 1 s (Xen's limit for
/// its time slice).
pub const MAX_CONFIG_NS: u64 = 1_000_000_000;
/// Most accounting periods handed out by one call when the caller is late;
/// further missed periods are skipped (they would refill credits that the
/// bound clips anyway).
pub const MAX_CATCHUP_PERIODS: u32 = 8;
/// Default number of vCPU slots: one per domain slot (the hypervisor
/// gives each domain one vCPU).
pub const MAX_VCPUS: usize = 1024;
/// Default number of domain slots. With the defaults a scheduler is about
/// 100 KiB: keep it in a static (built by the `const` [`Scheduler::new`]),
/// never on a hypervisor stack.
pub const MAX_DOMAINS: usize = 1024;
/// Fixed-point scale of per-vCPU shares (a domain's weight divided among
/// its vCPUs).
const SHARE_SHIFT: u32 = 16;
/// Meaning of [`Decision::slice_ns`] when nothing will change without an
/// event: do not program the timer.
pub const NO_DEADLINE: u64 = u64::MAX;

/// A vCPU: its domain and its index in that domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VcpuId {
    /// The domain.
    pub dom: DomId,
    /// The vCPU's index within the domain.
    pub vcpu: u32,
}

impl VcpuId {
    /// vCPU `vcpu` of domain `dom`.
    pub const fn new(dom: DomId, vcpu: u32) -> Self {
        VcpuId { dom, vcpu }
    }

    /// The table slot tried first for this vCPU ([`find_slot`]): with one
    /// vCPU per domain, the domain's id.
    fn home(self) -> usize {
        usize::from(self.dom).wrapping_add(self.vcpu as usize)
    }
}

/// The slot of `table` (its occupied part) holding the entry `is` picks:
/// slot `home` is tried first, where [`free_slot`] puts an entry when it
/// can, so that finding one is O(1) while ids fit the table; otherwise
/// the table is searched.
fn find_slot<T>(table: &[Option<T>], home: usize, is: impl Fn(&T) -> bool) -> Option<usize> {
    if table.get(home).is_some_and(|e| e.as_ref().is_some_and(&is)) {
        return Some(home);
    }
    table.iter().position(|e| e.as_ref().is_some_and(&is))
}

/// One past the last occupied slot of `table`.
fn top<T>(table: &[Option<T>]) -> usize {
    table.iter().rposition(Option::is_some).map_or(0, |i| i + 1)
}

/// A free slot of `table` for an entry whose home is `home`: that slot
/// if it is free, else the first free one.
fn free_slot<T>(table: &[Option<T>], home: usize) -> Option<usize> {
    if table.get(home).is_some_and(Option::is_none) {
        return Some(home);
    }
    table.iter().position(Option::is_none)
}

/// What a vCPU is doing, as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuState {
    /// On the CPU: the last decision chose it.
    Running,
    /// Waiting for the CPU.
    Runnable,
    /// Waiting for an event ([`Scheduler::block`]); only a wake makes it
    /// runnable.
    Blocked,
    /// Its domain's pause count is not zero (whatever it would otherwise be,
    /// except offline).
    Paused,
    /// Down: added but not brought up, or taken down.
    Offline,
}

/// Scheduling priority, lowest first (so `Boost > Under > Over`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Out of credit: runs only when no Under or Boost vCPU is eligible.
    Over,
    /// Has credit left.
    Under,
    /// Woken from a block with credit: runs first, for a bounded time.
    Boost,
}

/// A domain's scheduling parameters (Xen's `xen_domctl_sched_credit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Relative share of the CPU, 1..=65535.
    pub weight: u16,
    /// Most CPU the domain may use, in percent of one CPU; 0: no cap.
    pub cap: u16,
}

impl Default for Params {
    fn default() -> Self {
        Params { weight: DEFAULT_WEIGHT, cap: 0 }
    }
}

/// Timing parameters of a [`Scheduler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Longest a vCPU runs before others of its priority get a turn.
    pub tslice_ns: u64,
    /// Accounting period: credits are handed out once per period, and caps
    /// are budgets per period.
    pub period_ns: u64,
    /// Shortest slice that running out of credit may cut (avoids slivers).
    pub min_slice_ns: u64,
    /// Longest a boost lasts, in CPU time.
    pub boost_ns: u64,
}

impl Config {
    /// 30 ms slices, 30 ms periods, 1 ms minimum slice, 10 ms boost.
    pub const DEFAULT: Config = Config {
        tslice_ns: DEFAULT_TSLICE_NS,
        period_ns: DEFAULT_PERIOD_NS,
        min_slice_ns: DEFAULT_MIN_SLICE_NS,
        boost_ns: DEFAULT_BOOST_NS,
    };

    /// Checks that slice and period are within
    /// [`MIN_CONFIG_NS`]..=[`MAX_CONFIG_NS`] and that the minimum slice and
    /// the boost are non-zero and no longer than the slice.
    pub fn validate(&self) -> Result<(), SchedError> {
        let range = MIN_CONFIG_NS..=MAX_CONFIG_NS;
        let ok = range.contains(&self.tslice_ns)
            && range.contains(&self.period_ns)
            && (1..=self.tslice_ns).contains(&self.min_slice_ns)
            && (1..=self.tslice_ns).contains(&self.boost_ns);
        if ok {
            Ok(())
        } else {
            Err(SchedError::BadConfig)
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

/// The outcome of [`Scheduler::schedule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The vCPU to run; `None`: idle, halt until an interrupt.
    pub next: Option<VcpuId>,
    /// Call `schedule` again this many nanoseconds from now (program a
    /// one-shot timer); always at least 1. [`NO_DEADLINE`]: nothing changes
    /// until an event (only when idle).
    pub slice_ns: u64,
}

/// Why a scheduler operation was refused. Nothing changes when one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// No such domain.
    NoSuchDomain,
    /// No such vCPU.
    NoSuchVcpu,
    /// The domain or vCPU is already there.
    Exists,
    /// No free slot.
    Full,
    /// Weight 0.
    BadWeight,
    /// Unpausing a domain that is not paused.
    NotPaused,
    /// The pause count would overflow.
    PauseOverflow,
    /// A [`Config`] outside its limits.
    BadConfig,
}

impl SchedError {
    /// The Xen errno a hypercall reports for this error.
    pub const fn errno(self) -> Errno {
        match self {
            SchedError::NoSuchDomain => Errno::ESRCH,
            SchedError::NoSuchVcpu => Errno::ENOENT,
            SchedError::Exists => Errno::EEXIST,
            SchedError::Full => Errno::ENOSPC,
            SchedError::BadWeight | SchedError::NotPaused | SchedError::BadConfig => Errno::EINVAL,
            SchedError::PauseOverflow => Errno::EOVERFLOW,
        }
    }
}

/// Scheduler state of one domain.
#[derive(Clone, Copy, Debug)]
struct Dom {
    id: DomId,
    params: Params,
    /// Nested pauses.
    pause_count: u32,
    /// CPU time used in the current accounting period (for the cap).
    used_ns: u64,
    /// CPU time used since it was added.
    cpu_time_ns: u64,
    /// Its vCPUs active in the period being refilled (scratch for
    /// [`Scheduler::refill`], which must not put a `D`-sized array on the
    /// stack).
    active_vcpus: u32,
}

/// Whether a vCPU could run, apart from pauses and caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    Offline,
    Blocked,
    /// Runnable or running (running: it is `Scheduler::current`).
    Runnable,
}

/// Scheduler state of one vCPU.
#[derive(Clone, Copy, Debug)]
struct Vc {
    id: VcpuId,
    /// Slot of its domain.
    dom: usize,
    run: Run,
    /// Nanoseconds of CPU time it may still use at Under priority; within
    /// ±`credit_bound`.
    credit: i64,
    /// CPU time left in its boost; 0: not boosted.
    boost_left_ns: u64,
    /// Position in the round-robin order: lower goes first.
    seq: u64,
    /// Wanted the CPU during this accounting period: earns credit at its end.
    active: bool,
    /// Yielded: passed over in the next decision.
    yielded: bool,
    /// CPU time used since it was added.
    cpu_time_ns: u64,
}

impl Vc {
    fn priority(&self) -> Priority {
        if self.boost_left_ns > 0 {
            Priority::Boost
        } else if self.credit > 0 {
            Priority::Under
        } else {
            Priority::Over
        }
    }
}

/// A credit scheduler for up to `V` vCPUs of up to `D` domains on one CPU.
///
/// Every `Result`-returning operation validates its arguments first and
/// changes nothing when it fails. A returned `bool` means "the caller
/// should call [`Scheduler::schedule`] now": the running vCPU stopped being
/// eligible, or a vCPU that should preempt it (or end an idle) appeared.
#[derive(Clone, Debug)]
pub struct Scheduler<const V: usize = MAX_VCPUS, const D: usize = MAX_DOMAINS> {
    config: Config,
    doms: [Option<Dom>; D],
    vcpus: [Option<Vc>; V],
    /// One past the highest occupied slot of `doms` and of `vcpus`: every
    /// walk over the tables stops there, so its cost follows the domains
    /// there are, not the table's size.
    dom_top: usize,
    vcpu_top: usize,
    /// Slot of the running vCPU (it stays here after blocking or being
    /// paused until the next decision, so its last run is charged).
    current: Option<usize>,
    /// When the running vCPU's time slice ends.
    slice_end: u64,
    /// Time up to which running has been charged.
    last: u64,
    /// End of the current accounting period.
    next_period: u64,
    /// Next round-robin position.
    next_seq: u64,
}

impl<const V: usize, const D: usize> Default for Scheduler<V, D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const V: usize, const D: usize> Scheduler<V, D> {
    /// An empty scheduler with [`Config::DEFAULT`]; time starts at 0.
    pub const fn new() -> Self {
        Self::new_unchecked(Config::DEFAULT)
    }

    /// An empty scheduler with `config`; time starts at 0.
    pub fn with_config(config: Config) -> Result<Self, SchedError> {
        config.validate()?;
        Ok(Self::new_unchecked(config))
    }

    const fn new_unchecked(config: Config) -> Self {
        Scheduler {
            config,
            doms: [None; D],
            vcpus: [None; V],
            dom_top: 0,
            vcpu_top: 0,
            current: None,
            slice_end: 0,
            last: 0,
            next_period: config.period_ns,
            next_seq: 0,
        }
    }

    /// The timing parameters.
    pub fn config(&self) -> Config {
        self.config
    }

    /// The most credit a vCPU can hold, and the most debt: one period of
    /// CPU time.
    pub fn credit_bound(&self) -> i64 {
        // Validated: at most MAX_CONFIG_NS.
        self.config.period_ns as i64
    }

    // ---- domains -------------------------------------------------------

    /// Adds domain `dom` with the default weight, no cap, unpaused and with
    /// no vCPUs.
    pub fn add_domain(&mut self, dom: DomId) -> Result<(), SchedError> {
        if self.dom_slot(dom).is_ok() {
            return Err(SchedError::Exists);
        }
        let slot = free_slot(&self.doms, usize::from(dom)).ok_or(SchedError::Full)?;
        self.dom_top = self.dom_top.max(slot + 1);
        self.doms[slot] = Some(Dom {
            id: dom,
            params: Params::default(),
            pause_count: 0,
            used_ns: 0,
            cpu_time_ns: 0,
            active_vcpus: 0,
        });
        Ok(())
    }

    /// Removes domain `dom` and all its vCPUs. `true`: one was running.
    pub fn remove_domain(&mut self, dom: DomId) -> Result<bool, SchedError> {
        let slot = self.dom_slot(dom)?;
        let mut was_current = false;
        for i in 0..self.vcpu_top {
            if self.vcpus[i].is_some_and(|vc| vc.dom == slot) {
                was_current |= self.drop_vcpu(i);
            }
        }
        self.doms[slot] = None;
        self.dom_top = top(&self.doms[..self.dom_top]);
        Ok(was_current)
    }

    /// Sets `dom`'s weight and cap. The weight counts from the next
    /// accounting period; the cap at once.
    pub fn set_params(&mut self, dom: DomId, params: Params) -> Result<(), SchedError> {
        let slot = self.dom_slot(dom)?;
        if params.weight == 0 {
            return Err(SchedError::BadWeight);
        }
        self.dom_mut(slot).params = params;
        Ok(())
    }

    /// Sets `dom`'s weight (1..=65535), keeping its cap.
    pub fn set_weight(&mut self, dom: DomId, weight: u16) -> Result<(), SchedError> {
        let cap = self.params(dom)?.cap;
        self.set_params(dom, Params { weight, cap })
    }

    /// Sets `dom`'s cap in percent of one CPU (0: none), keeping its weight.
    pub fn set_cap(&mut self, dom: DomId, cap: u16) -> Result<(), SchedError> {
        let weight = self.params(dom)?.weight;
        self.set_params(dom, Params { weight, cap })
    }

    /// `dom`'s weight and cap.
    pub fn params(&self, dom: DomId) -> Result<Params, SchedError> {
        Ok(self.dom(self.dom_slot(dom)?).params)
    }

    /// Pauses `dom` once more (pauses nest). `true`: its vCPU was running.
    pub fn pause_domain(&mut self, dom: DomId) -> Result<bool, SchedError> {
        let slot = self.dom_slot(dom)?;
        let count = self.dom(slot).pause_count.checked_add(1).ok_or(SchedError::PauseOverflow)?;
        self.dom_mut(slot).pause_count = count;
        Ok(self.current.is_some_and(|c| self.vc(c).dom == slot))
    }

    /// Undoes one [`Scheduler::pause_domain`]. `true`: the domain is now
    /// unpaused and one of its vCPUs should preempt the running one.
    pub fn unpause_domain(&mut self, dom: DomId) -> Result<bool, SchedError> {
        let slot = self.dom_slot(dom)?;
        let count = self.dom(slot).pause_count.checked_sub(1).ok_or(SchedError::NotPaused)?;
        self.dom_mut(slot).pause_count = count;
        if count > 0 {
            return Ok(false);
        }
        let mut preempt = false;
        for i in 0..self.vcpu_top {
            if self.vcpus[i].is_some_and(|vc| vc.dom == slot && vc.run == Run::Runnable) {
                self.vc_mut(i).active = true;
                preempt |= self.should_preempt(i);
            }
        }
        Ok(preempt)
    }

    /// Whether `dom` is paused.
    pub fn is_paused(&self, dom: DomId) -> Result<bool, SchedError> {
        Ok(self.dom(self.dom_slot(dom)?).pause_count > 0)
    }

    /// CPU time `dom`'s vCPUs have used, charged up to the last
    /// [`Scheduler::account`].
    pub fn domain_cpu_time(&self, dom: DomId) -> Result<u64, SchedError> {
        Ok(self.dom(self.dom_slot(dom)?).cpu_time_ns)
    }

    // ---- vCPUs ---------------------------------------------------------

    /// Adds vCPU `v` of an existing domain, offline and without credit.
    pub fn add_vcpu(&mut self, v: VcpuId) -> Result<(), SchedError> {
        let dom = self.dom_slot(v.dom)?;
        if self.vcpu_slot(v).is_ok() {
            return Err(SchedError::Exists);
        }
        let slot = free_slot(&self.vcpus, v.home()).ok_or(SchedError::Full)?;
        self.vcpu_top = self.vcpu_top.max(slot + 1);
        self.vcpus[slot] = Some(Vc {
            id: v,
            dom,
            run: Run::Offline,
            credit: 0,
            boost_left_ns: 0,
            seq: 0,
            active: false,
            yielded: false,
            cpu_time_ns: 0,
        });
        Ok(())
    }

    /// Removes vCPU `v`. `true`: it was running.
    pub fn remove_vcpu(&mut self, v: VcpuId) -> Result<bool, SchedError> {
        let slot = self.vcpu_slot(v)?;
        Ok(self.drop_vcpu(slot))
    }

    /// Brings `v` online (Xen's `VCPUOP_up`): runnable, at the tail of the
    /// queue. No change if it is online already. `true`: it should preempt.
    pub fn up(&mut self, v: VcpuId) -> Result<bool, SchedError> {
        let slot = self.vcpu_slot(v)?;
        if self.vc(slot).run != Run::Offline {
            return Ok(false);
        }
        self.make_runnable(slot);
        Ok(self.should_preempt(slot))
    }

    /// Takes `v` offline (Xen's `VCPUOP_down`). `true`: it was running.
    pub fn down(&mut self, v: VcpuId) -> Result<bool, SchedError> {
        let slot = self.vcpu_slot(v)?;
        let vc = self.vc_mut(slot);
        vc.run = Run::Offline;
        vc.boost_left_ns = 0;
        vc.yielded = false;
        Ok(self.current == Some(slot))
    }

    /// Blocks `v` until [`Scheduler::wake`] (the caller checks for pending
    /// events first). An offline vCPU stays offline. `true`: it was running.
    pub fn block(&mut self, v: VcpuId) -> Result<bool, SchedError> {
        let slot = self.vcpu_slot(v)?;
        let vc = self.vc_mut(slot);
        if vc.run == Run::Runnable {
            vc.run = Run::Blocked;
            vc.boost_left_ns = 0;
            vc.yielded = false;
        }
        Ok(self.current == Some(slot))
    }

    /// Wakes `v` if it is blocked: runnable at the tail of the queue, and
    /// boosted if it has credit left. Waking a vCPU that is not blocked does
    /// nothing. `true`: it should preempt the running vCPU (or end an idle).
    pub fn wake(&mut self, v: VcpuId) -> Result<bool, SchedError> {
        let slot = self.vcpu_slot(v)?;
        if self.vc(slot).run != Run::Blocked {
            return Ok(false);
        }
        self.make_runnable(slot);
        let boost = self.config.boost_ns;
        let vc = self.vc_mut(slot);
        if vc.credit > 0 {
            vc.boost_left_ns = boost;
        }
        Ok(self.should_preempt(slot))
    }

    /// `v` yields: it goes to the tail of its priority and the next
    /// decision passes it over if anything else is eligible. `true`: it is
    /// the running vCPU.
    pub fn yield_(&mut self, v: VcpuId) -> Result<bool, SchedError> {
        let slot = self.vcpu_slot(v)?;
        let vc = self.vc_mut(slot);
        if vc.run == Run::Runnable {
            vc.yielded = true;
        }
        Ok(self.current == Some(slot))
    }

    /// `v`'s state.
    pub fn state(&self, v: VcpuId) -> Result<VcpuState, SchedError> {
        let slot = self.vcpu_slot(v)?;
        let vc = self.vc(slot);
        Ok(match vc.run {
            Run::Offline => VcpuState::Offline,
            _ if self.dom(vc.dom).pause_count > 0 => VcpuState::Paused,
            Run::Blocked => VcpuState::Blocked,
            Run::Runnable if self.current == Some(slot) => VcpuState::Running,
            Run::Runnable => VcpuState::Runnable,
        })
    }

    /// `v`'s credit in nanoseconds of CPU time (negative: in debt), as of the
    /// last [`Scheduler::account`].
    pub fn credit(&self, v: VcpuId) -> Result<i64, SchedError> {
        Ok(self.vc(self.vcpu_slot(v)?).credit)
    }

    /// `v`'s priority, as of the last [`Scheduler::account`].
    pub fn priority(&self, v: VcpuId) -> Result<Priority, SchedError> {
        Ok(self.vc(self.vcpu_slot(v)?).priority())
    }

    /// CPU time `v` has used, charged up to the last [`Scheduler::account`].
    pub fn cpu_time(&self, v: VcpuId) -> Result<u64, SchedError> {
        Ok(self.vc(self.vcpu_slot(v)?).cpu_time_ns)
    }

    /// Whether `v`'s domain has used its cap's budget for this period.
    pub fn is_parked(&self, v: VcpuId) -> Result<bool, SchedError> {
        Ok(self.parked(self.vc(self.vcpu_slot(v)?).dom))
    }

    /// The vCPU the last decision chose, if it has not been removed.
    pub fn current(&self) -> Option<VcpuId> {
        self.current.map(|c| self.vc(c).id)
    }

    // ---- time ----------------------------------------------------------

    /// Charges the time since the last call to the running vCPU and hands
    /// out credit for every accounting period that ended by `now` (at most
    /// [`MAX_CATCHUP_PERIODS`]; older ones are skipped). A `now` earlier
    /// than a previous one is treated as that one.
    pub fn account(&mut self, now: u64) {
        if now > self.last {
            let elapsed = now - self.last;
            self.last = now;
            if let Some(c) = self.current {
                self.charge(c, elapsed);
            }
        }
        let period = self.config.period_ns;
        let mut refills = 0;
        while self.last >= self.next_period && refills < MAX_CATCHUP_PERIODS {
            self.refill();
            self.next_period = self.next_period.saturating_add(period);
            refills += 1;
        }
        if self.last >= self.next_period {
            let behind = (self.last - self.next_period) / period + 1;
            self.next_period = self.next_period.saturating_add(behind.saturating_mul(period));
        }
    }

    /// Accounts up to `now` and decides what runs next and for how long.
    ///
    /// The running vCPU keeps the CPU if it is still eligible, has not
    /// yielded, its time slice has not ended and nothing eligible has a
    /// higher priority; calling this more often than needed changes nothing
    /// but the returned deadline. Otherwise the running vCPU goes to the
    /// tail of its priority, loses any boost, and the eligible vCPU with
    /// the highest priority that is earliest in round-robin order gets a new
    /// slice (a yielder only if nothing else is eligible).
    pub fn schedule(&mut self, now: u64) -> Decision {
        self.account(now);
        let now = self.last;
        let prev = self.current;
        let keep = prev.filter(|&c| self.eligible(c) && !self.vc(c).yielded && now < self.slice_end);
        let best = self.pick(keep);
        let next = match (keep, best) {
            (Some(c), Some(b)) if self.vc(c).priority() >= self.vc(b).priority() => Some(c),
            (Some(c), None) => Some(c),
            _ => {
                if let Some(p) = prev {
                    self.requeue(p);
                }
                let next = self.pick(None);
                self.slice_end = now.saturating_add(self.config.tslice_ns);
                next
            }
        };
        for vc in self.vcpus[..self.vcpu_top].iter_mut().flatten() {
            vc.yielded = false;
        }
        self.current = next;
        match next {
            Some(n) => Decision { next: Some(self.vc(n).id), slice_ns: self.slice_for(n, now) },
            None => Decision { next: None, slice_ns: self.idle_deadline(now) },
        }
    }

    // ---- internals -----------------------------------------------------

    /// The best eligible vCPU other than `except`; a yielder only if
    /// nothing else qualifies.
    fn pick(&self, except: Option<usize>) -> Option<usize> {
        let mut best: Option<(bool, Priority, u64, usize)> = None;
        for i in 0..self.vcpu_top {
            if Some(i) == except || !self.eligible(i) {
                continue;
            }
            let vc = self.vc(i);
            // Larger is better: not yielded, then priority, then earlier seq.
            let key = (!vc.yielded, vc.priority(), u64::MAX - vc.seq, i);
            if best.is_none_or(|b| (key.0, key.1, key.2) > (b.0, b.1, b.2)) {
                best = Some(key);
            }
        }
        best.map(|b| b.3)
    }

    /// How long `n`, chosen at `now`, may run before the next decision.
    fn slice_for(&self, n: usize, now: u64) -> u64 {
        let vc = self.vc(n);
        let dom = self.dom(vc.dom);
        let mut slice = self.slice_end.saturating_sub(now).min(self.next_period.saturating_sub(now));
        match vc.priority() {
            Priority::Boost => slice = slice.min(vc.boost_left_ns),
            Priority::Under => slice = slice.min((vc.credit as u64).max(self.config.min_slice_ns)),
            Priority::Over => {}
        }
        if let Some(budget) = self.cap_budget(dom.params.cap) {
            slice = slice.min(budget.saturating_sub(dom.used_ns));
        }
        slice.max(1)
    }

    /// When an idle CPU must decide again: at the end of the period if a
    /// capped domain is waiting for its budget, otherwise never.
    fn idle_deadline(&self, now: u64) -> u64 {
        let waiting = self.vcpus[..self.vcpu_top].iter().flatten().any(|vc| {
            let dom = self.dom(vc.dom);
            vc.run == Run::Runnable && dom.pause_count == 0 && self.parked(vc.dom)
        });
        if waiting {
            self.next_period.saturating_sub(now).max(1)
        } else {
            NO_DEADLINE
        }
    }

    /// Charges `elapsed` of CPU time to vCPU slot `c`.
    fn charge(&mut self, c: usize, elapsed: u64) {
        let bound = self.credit_bound();
        let vc = self.vc_mut(c);
        let burn = i64::try_from(elapsed).unwrap_or(i64::MAX);
        vc.credit = vc.credit.saturating_sub(burn).max(-bound);
        vc.boost_left_ns = vc.boost_left_ns.saturating_sub(elapsed);
        vc.cpu_time_ns = vc.cpu_time_ns.saturating_add(elapsed);
        let dom = vc.dom;
        let dom = self.dom_mut(dom);
        dom.used_ns = dom.used_ns.saturating_add(elapsed);
        dom.cpu_time_ns = dom.cpu_time_ns.saturating_add(elapsed);
    }

    /// End of an accounting period: hands out one period of CPU time to the
    /// vCPUs active in it, by domain weight, and starts the next period.
    ///
    /// A vCPU's share is its domain's weight divided among the domain's
    /// active vCPUs. What a vCPU cannot take because it is at the credit
    /// bound (it used less than it was given) goes, in a second pass, to the
    /// active vCPUs below the bound in proportion to their shares, so CPU
    /// time that light domains leave is shared by weight among the busy
    /// ones rather than lost. What the second pass cannot place either is
    /// dropped.
    fn refill(&mut self) {
        for dom in self.doms[..self.dom_top].iter_mut().flatten() {
            dom.active_vcpus = 0;
        }
        for i in 0..self.vcpu_top {
            let Some(vc) = self.vcpus[i].filter(|vc| vc.active) else { continue };
            self.dom_mut(vc.dom).active_vcpus += 1;
        }
        // Per-vCPU shares in fixed point: weight << SHARE_SHIFT / vCPUs.
        let share = |s: &Self, vc: &Vc| {
            let dom = s.dom(vc.dom);
            (u128::from(dom.params.weight) << SHARE_SHIFT) / u128::from(dom.active_vcpus)
        };
        let total: u128 =
            self.vcpus[..self.vcpu_top].iter().flatten().filter(|vc| vc.active).map(|vc| share(self, vc)).sum();
        let bound = self.credit_bound();
        let period = u128::from(self.config.period_ns);
        // First pass: everyone's share of the period.
        let mut surplus: u128 = 0;
        let mut hungry: u128 = 0;
        for i in 0..self.vcpu_top {
            let Some(vc) = self.vcpus[i].filter(|vc| vc.active) else { continue };
            let s = share(self, &vc);
            // At most one period, which fits an i64.
            let credit = vc.credit.saturating_add((period * s / total) as i64);
            if credit >= bound {
                surplus += (credit - bound) as u128;
            } else {
                hungry += s;
            }
            self.vc_mut(i).credit = credit.min(bound);
        }
        // Second pass: what the full ones could not take.
        if surplus > 0 && hungry > 0 {
            for i in 0..self.vcpu_top {
                let Some(vc) = self.vcpus[i].filter(|vc| vc.active && vc.credit < bound) else { continue };
                let extra = (surplus * share(self, &vc) / hungry) as i64;
                self.vc_mut(i).credit = vc.credit.saturating_add(extra).min(bound);
            }
        }
        // Credit every active vCPU holds is credit nobody is owed: it came
        // from time the CPU gave none of them (idle, or a period with fewer
        // takers). Left in place it lifts everyone towards the bound, where
        // clipping (and handing the clipped part to others) undoes the
        // weights; take it off, keeping who is ahead of whom and leaving
        // the one furthest behind a minimum slice of credit, so that it
        // stays Under (and is boosted when it wakes). A vCPU alone competes
        // with nobody: its credit stays.
        let takers = self.vcpus[..self.vcpu_top].iter().flatten().filter(|vc| vc.active).count();
        let floor =
            self.vcpus[..self.vcpu_top].iter().flatten().filter(|vc| vc.active).map(|vc| vc.credit).min().unwrap_or(0);
        let keep = i64::try_from(self.config.min_slice_ns).unwrap_or(i64::MAX);
        if floor > keep && takers > 1 {
            for vc in self.vcpus[..self.vcpu_top].iter_mut().flatten().filter(|vc| vc.active) {
                vc.credit -= floor - keep;
            }
        }
        for i in 0..self.vcpu_top {
            let Some(vc) = self.vcpus[i] else { continue };
            let paused = self.dom(vc.dom).pause_count > 0;
            self.vc_mut(i).active = vc.run == Run::Runnable && !paused;
        }
        for dom in self.doms[..self.dom_top].iter_mut().flatten() {
            dom.used_ns = 0;
        }
    }

    /// Puts the vCPU that was running back in the queue, at the tail.
    fn requeue(&mut self, c: usize) {
        let seq = self.bump_seq();
        let vc = self.vc_mut(c);
        vc.boost_left_ns = 0;
        vc.seq = seq;
    }

    fn make_runnable(&mut self, slot: usize) {
        let seq = self.bump_seq();
        let paused = self.dom(self.vc(slot).dom).pause_count > 0;
        let vc = self.vc_mut(slot);
        vc.run = Run::Runnable;
        vc.seq = seq;
        vc.active |= !paused;
    }

    fn bump_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        // 2^64 decisions are centuries away; saturating keeps it panic-free.
        self.next_seq = self.next_seq.saturating_add(1);
        seq
    }

    /// Whether slot `i` holds a vCPU that may run now.
    fn eligible(&self, i: usize) -> bool {
        self.vcpus[i]
            .is_some_and(|vc| vc.run == Run::Runnable && self.dom(vc.dom).pause_count == 0 && !self.parked(vc.dom))
    }

    /// Whether eligible vCPU slot `i` should take the CPU from the running
    /// vCPU (or from the idle loop).
    fn should_preempt(&self, i: usize) -> bool {
        if !self.eligible(i) {
            return false;
        }
        match self.current {
            Some(c) if c != i && self.eligible(c) => self.vc(i).priority() > self.vc(c).priority(),
            Some(c) => c != i,
            None => true,
        }
    }

    /// The cap's budget per period, if there is a cap.
    fn cap_budget(&self, cap: u16) -> Option<u64> {
        (cap != 0).then(|| {
            let budget = u128::from(self.config.period_ns) * u128::from(cap) / 100;
            u64::try_from(budget).unwrap_or(u64::MAX)
        })
    }

    /// Whether domain slot `d` has used its cap's budget for this period.
    fn parked(&self, d: usize) -> bool {
        let dom = self.dom(d);
        self.cap_budget(dom.params.cap).is_some_and(|budget| dom.used_ns >= budget)
    }

    /// Empties vCPU slot `i`; `true` if it was running.
    fn drop_vcpu(&mut self, i: usize) -> bool {
        self.vcpus[i] = None;
        self.vcpu_top = top(&self.vcpus[..self.vcpu_top]);
        if self.current == Some(i) {
            self.current = None;
            true
        } else {
            false
        }
    }

    fn dom_slot(&self, dom: DomId) -> Result<usize, SchedError> {
        find_slot(&self.doms[..self.dom_top], usize::from(dom), |d| d.id == dom).ok_or(SchedError::NoSuchDomain)
    }

    fn vcpu_slot(&self, v: VcpuId) -> Result<usize, SchedError> {
        find_slot(&self.vcpus[..self.vcpu_top], v.home(), |vc| vc.id == v).ok_or(SchedError::NoSuchVcpu)
    }

    // Slots passed to these come from `dom_slot`, `vcpu_slot`, a vCPU's
    // `dom` (a domain outlives its vCPUs) or `current` (cleared when its
    // vCPU is removed), so they are always occupied.
    fn dom(&self, d: usize) -> &Dom {
        self.doms[d].as_ref().expect("scheduler: empty domain slot")
    }

    fn dom_mut(&mut self, d: usize) -> &mut Dom {
        self.doms[d].as_mut().expect("scheduler: empty domain slot")
    }

    fn vc(&self, i: usize) -> &Vc {
        self.vcpus[i].as_ref().expect("scheduler: empty vCPU slot")
    }

    fn vc_mut(&mut self, i: usize) -> &mut Vc {
        self.vcpus[i].as_mut().expect("scheduler: empty vCPU slot")
    }
}

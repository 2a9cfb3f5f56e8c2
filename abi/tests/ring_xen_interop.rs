//! `abi::ring` against Xen's own `io/ring.h`: binary compatibility, proved
//! by running the protocol with a C program at the other end.
//!
//! `tests/c/ring_interop.c` includes `<xen/io/ring.h>` from Debian's
//! `libxen-dev` (as `tests/xen_layout.rs` does), defines a test request and
//! response with `DEFINE_RING_TYPES`, and plays either end using only Xen's
//! macros. This test compiles it with `cc`, shares a file mapped
//! `MAP_SHARED` with it (ring page at 0, control page at 4096), and plays the
//! other end with `FrontRing`/`BackRing`, in both directions and across the
//! 2^32 index wrap. Notifications are counters in the control page; each end
//! sleeps only after a final check, so a lost wakeup is a timeout. The C
//! program's `layout` mode also prints `sizeof` the entry union,
//! `offsetof(ring)`, `__CONST_RING_SIZE` and slot addresses, which must match
//! `Sring`'s.
//!
//! Without the headers the tests fail and say how to install them.

use std::ffi::{c_int, c_void};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use abi::ring::{BackRing, FrontRing, RingEntry, RingIdx, RingPage, Sring};

const RING_H: &str = "/usr/include/xen/io/ring.h";
const PAGE: usize = 4096;
const TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The test ring: the same structs as ring_interop.c
// ---------------------------------------------------------------------------

/// `struct ring_test_request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct TestReq {
    id: u64,
    seq: u32,
    op: u16,
    len: u16,
    data: [u32; 3],
    checksum: u32,
}

/// `struct ring_test_response`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct TestRsp {
    seq: u32,
    status: i32,
    checksum: u32,
}

/// `struct odd_request`: 13 bytes, so the entry union rounds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct OddReq {
    bytes: [u8; 13],
}

/// `struct odd_response`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct OddRsp {
    value: u64,
}

/// `struct small_request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct SmallReq {
    a: u32,
    b: u32,
}

/// `struct wide_response`: larger than the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct WideRsp {
    words: [u32; 6],
}

// SAFETY: integers only; 8 + 4 + 2 + 2 + 12 + 4 = 32 bytes, no padding.
unsafe impl RingEntry for TestReq {}
// SAFETY: integers only; 12 bytes, no padding.
unsafe impl RingEntry for TestRsp {}
// SAFETY: bytes only.
unsafe impl RingEntry for OddReq {}
// SAFETY: one integer.
unsafe impl RingEntry for OddRsp {}
// SAFETY: integers only, no padding.
unsafe impl RingEntry for SmallReq {}
// SAFETY: integers only, no padding.
unsafe impl RingEntry for WideRsp {}

const _: () = assert!(size_of::<TestReq>() == 32 && size_of::<TestRsp>() == 12);

fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

fn request_checksum(r: &TestReq) -> u32 {
    let mut c = r.id as u32 ^ (r.id >> 32) as u32 ^ r.seq ^ (u32::from(r.op) << 16 | u32::from(r.len));
    for d in r.data {
        c = mix32(c ^ d);
    }
    c
}

/// As `make_request` in ring_interop.c.
fn make_request(seq: u32) -> TestReq {
    let mut r = TestReq {
        id: u64::from(mix32(seq)) << 32 | u64::from(seq),
        seq,
        op: (seq % 7) as u16,
        len: seq.wrapping_mul(3) as u16,
        data: [0; 3],
        checksum: 0,
    };
    for (i, d) in r.data.iter_mut().enumerate() {
        *d = mix32(seq.wrapping_mul(3).wrapping_add(i as u32 + 1));
    }
    r.checksum = request_checksum(&r);
    r
}

/// As `make_response` in ring_interop.c.
fn make_response(q: &TestReq) -> TestRsp {
    TestRsp { seq: q.seq, status: -((q.seq % 5) as i32), checksum: mix32(q.checksum ^ 0x5a5a_5a5a) }
}

// ---------------------------------------------------------------------------
// The C program
// ---------------------------------------------------------------------------

fn headers_missing_message() -> String {
    format!(
        "Xen's io/ring.h not found at {RING_H}: install libxen-dev (`cargo xtask test` installs it, \
         or apt-get install libxen-dev)"
    )
}

/// Compiles `tests/c/ring_interop.c` once per test process.
fn helper() -> &'static Path {
    static HELPER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = HELPER.get_or_init(|| {
        if !Path::new(RING_H).exists() {
            return Err(headers_missing_message());
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/ring_interop.c");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ring_interop");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        remove_stale(&dir);
        let exe = dir.join(format!("ring_interop-{}", std::process::id()));
        let cc = Command::new("cc")
            // __XEN_TOOLS__ selects the latest interface, as xen_layout.rs does
            // (the legacy one would redefine the xen_*mb() barriers).
            .args(["-std=gnu11", "-O2", "-Wall", "-Wextra", "-D__XEN_TOOLS__", "-o"])
            .arg(&exe)
            .arg(&src)
            .output()
            .map_err(|e| format!("running cc: {e}"))?;
        if !cc.status.success() {
            return Err(format!("cc failed on {}:\n{}", src.display(), String::from_utf8_lossy(&cc.stderr)));
        }
        Ok(exe)
    });
    match result {
        Ok(exe) => exe,
        Err(e) => panic!("{e}"),
    }
}

/// Removes helpers that earlier test processes left behind (each process
/// compiles its own, and cannot delete it while its tests may still run it).
fn remove_stale(dir: &Path) {
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < hour_ago) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// What `ring_interop layout` prints for one ring type.
#[derive(Debug, Default)]
struct CLayout {
    req: (usize, usize),
    rsp: (usize, usize),
    entry: usize,
    offset: usize,
    size4096: u32,
    size8192: u32,
    slot_req5: usize,
    slot_rsp_max: usize,
}

fn c_layouts() -> Vec<(String, CLayout)> {
    let out = Command::new(helper()).arg("layout").output().expect("running ring_interop layout");
    assert!(out.status.success(), "ring_interop layout failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            assert_eq!((w.len(), w[0]), (20, "layout"), "unexpected line: {line}");
            let num = |key: &str| -> usize {
                let at = w.iter().position(|x| *x == key).unwrap_or_else(|| panic!("no {key} in {line}"));
                w[at + 1].parse().unwrap()
            };
            let pair = |key: &str| -> (usize, usize) {
                let at = w.iter().position(|x| *x == key).unwrap();
                (w[at + 1].parse().unwrap(), w[at + 2].parse().unwrap())
            };
            let l = CLayout {
                req: pair("req"),
                rsp: pair("rsp"),
                entry: num("entry"),
                offset: num("offset"),
                size4096: num("size4096") as u32,
                size8192: num("size8192") as u32,
                slot_req5: num("slot_req5"),
                slot_rsp_max: num("slot_rsp_max"),
            };
            (w[1].to_owned(), l)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Shared memory
// ---------------------------------------------------------------------------

const PROT_READ: c_int = 1;
const PROT_WRITE: c_int = 2;
const MAP_SHARED: c_int = 1;

extern "C" {
    fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, offset: i64) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
}

/// A file of two pages, mapped `MAP_SHARED`: the ring, then `struct ctl`.
struct Shared {
    path: PathBuf,
    base: NonNull<u8>,
    _file: File,
}

/// Offsets of `struct ctl`'s fields from the start of the file.
const FRONT_READY: usize = PAGE;
const TO_BACK: usize = PAGE + 4;
const TO_FRONT: usize = PAGE + 8;
const FAILED: usize = PAGE + 12;

impl Shared {
    fn new(name: &str) -> Shared {
        let path =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ring_interop-{}-{name}.shm", std::process::id()));
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        file.set_len(2 * PAGE as u64).unwrap();
        // SAFETY: a fresh shared mapping of the whole file, at an address
        // of the kernel's choosing; nothing else in this process uses it.
        let ptr =
            unsafe { mmap(std::ptr::null_mut(), 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, file.as_raw_fd(), 0) };
        assert!(ptr as isize != -1, "mmap {}: {}", path.display(), std::io::Error::last_os_error());
        Shared { path, base: NonNull::new(ptr.cast()).unwrap(), _file: file }
    }

    /// The ring page, shared with the C process.
    fn sring<Req: RingEntry, Rsp: RingEntry>(&self) -> Sring<'_, Req, Rsp> {
        // SAFETY: the first page of the mapping lives as long as `self`; this
        // process touches it only through `Sring` and `index` (atomics of
        // the sizes `abi::ring` uses); the C process is outside this program.
        unsafe { Sring::from_raw(self.base, PAGE) }.unwrap()
    }

    /// A 4-byte field of the mapping (a ring index or a `struct ctl`
    /// field), accessed atomically.
    fn word(&self, offset: usize) -> &AtomicU32 {
        assert!(offset & 3 == 0 && (offset < 16 || (PAGE..PAGE + 16).contains(&offset)));
        let ptr = self.base.as_ptr().wrapping_add(offset).cast::<u32>();
        // SAFETY: inside the mapping, which lives as long as `self`, and
        // 4-byte aligned; this process accesses these words only atomically
        // as u32s.
        unsafe { AtomicU32::from_ptr(ptr) }
    }

    fn failed(&self) -> bool {
        self.word(FAILED).load(Ordering::SeqCst) != 0
    }

    /// Waits until the counter at `offset` moves past `seen`.
    fn wait(&self, offset: usize, seen: u32, deadline: Instant, who: &str) -> Result<(), String> {
        let mut spins = 0u64;
        while self.word(offset).load(Ordering::SeqCst) == seen {
            if self.failed() {
                return Err(format!("{who}: the C end failed"));
            }
            spins += 1;
            if spins & 63 == 0 {
                std::thread::yield_now();
                if Instant::now() > deadline {
                    return Err(format!("{who}: timed out waiting for a notification (a lost wakeup?)"));
                }
            }
        }
        Ok(())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer borrowed (`self` is
        // being dropped, and every view borrowed it).
        unsafe { munmap(self.base.as_ptr().cast(), 2 * PAGE) };
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Starts the C end of a ring over `shared`.
fn spawn_c(role: &str, shared: &Shared, n: u32, start: RingIdx) -> Child {
    Command::new(helper())
        .args([role, shared.path.to_str().unwrap(), &n.to_string(), &start.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ring_interop")
}

/// Waits for the C end; its stdout, or an error with its stderr.
fn finish_c(mut child: Child, deadline: Instant) -> Result<String, String> {
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline + Duration::from_secs(5) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    if status.success() {
        Ok(out)
    } else {
        Err(format!("C end {status}: {err}"))
    }
}

// ---------------------------------------------------------------------------
// The Rust ends
// ---------------------------------------------------------------------------

fn rust_front(shared: &Shared, n: u32, start: RingIdx, deadline: Instant) -> Result<String, String> {
    let sring = shared.sring::<TestReq, TestRsp>();
    FrontRing::new(sring);
    for (offset, value) in [(0, start), (4, start.wrapping_add(1)), (8, start), (12, start.wrapping_add(1))] {
        shared.word(offset).store(value, Ordering::Relaxed);
    }
    let mut front = FrontRing::attach(sring, start);
    shared.word(FRONT_READY).store(1, Ordering::SeqCst);
    let (mut sent, mut received, mut notified, mut waits) = (0u32, 0u32, 0u32, 0u32);
    loop {
        let seen = shared.word(TO_FRONT).load(Ordering::SeqCst);
        while sent < n && !front.is_full() {
            front.push_request(make_request(sent)).map_err(|_| "push_request refused below full")?;
            sent += 1;
        }
        if front.push_requests_and_check_notify() {
            shared.word(TO_BACK).fetch_add(1, Ordering::SeqCst);
            notified += 1;
        }
        while let Some(rsp) = front.pop_response() {
            let want = make_response(&make_request(received));
            if rsp != want {
                return Err(format!("Rust front: response {received} is {rsp:?}, want {want:?}"));
            }
            received += 1;
        }
        if received == n {
            return Ok(format!("Rust front: {sent} requests, {notified} notifications sent, {waits} waits"));
        }
        if sent < n && !front.is_full() {
            continue;
        }
        if front.final_check_for_responses() {
            continue;
        }
        waits += 1;
        shared.wait(TO_FRONT, seen, deadline, "Rust front")?;
    }
}

fn rust_back(shared: &Shared, n: u32, start: RingIdx, deadline: Instant) -> Result<String, String> {
    while shared.word(FRONT_READY).load(Ordering::SeqCst) == 0 {
        if Instant::now() > deadline || shared.failed() {
            return Err("Rust back: the C frontend never initialised the ring".into());
        }
        std::thread::yield_now();
    }
    let mut back = BackRing::attach(shared.sring::<TestReq, TestRsp>(), start);
    let (mut expect, mut notified, mut waits) = (0u32, 0u32, 0u32);
    loop {
        let seen = shared.word(TO_BACK).load(Ordering::SeqCst);
        while let Some(req) = back.pop_request() {
            let want = make_request(expect);
            if req != want || request_checksum(&req) != req.checksum {
                return Err(format!("Rust back: request {expect} is {req:?}, want {want:?}"));
            }
            expect += 1;
            back.push_response(make_response(&req)).map_err(|_| "push_response refused")?;
        }
        if back.push_responses_and_check_notify() {
            shared.word(TO_FRONT).fetch_add(1, Ordering::SeqCst);
            notified += 1;
        }
        if expect == n {
            return Ok(format!("Rust back: {expect} requests, {notified} notifications sent, {waits} waits"));
        }
        if back.final_check_for_requests() {
            continue;
        }
        waits += 1;
        shared.wait(TO_BACK, seen, deadline, "Rust back")?;
    }
}

/// Runs `n` requests with the C program as `c_role` and Rust as the other
/// end, indices starting at `start`.
fn interop(c_role: &str, n: u32, start: RingIdx) {
    let shared = Shared::new(&format!("{c_role}-{start}"));
    let deadline = Instant::now() + TIMEOUT;
    let child = spawn_c(c_role, &shared, n, start);
    let rust = match c_role {
        "front" => rust_back(&shared, n, start, deadline),
        _ => rust_front(&shared, n, start, deadline),
    };
    if rust.is_err() {
        shared.word(FAILED).store(1, Ordering::SeqCst);
    }
    let c = finish_c(child, deadline);
    println!("{}\n{}", c.as_deref().unwrap_or("C end failed").trim(), rust.as_deref().unwrap_or("Rust end failed"));
    match (rust, c) {
        (Ok(_), Ok(out)) => assert!(out.contains(&format!("{n} requests")), "C end output: {out}"),
        (rust, c) => panic!("interop failed:\n  Rust: {rust:?}\n  C: {c:?}"),
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn ring_interop_c_front_rust_back() {
    interop("front", 100_000, 0);
}

#[test]
fn ring_interop_rust_front_c_back() {
    interop("back", 100_000, 0);
}

#[test]
fn ring_interop_across_the_index_wrap() {
    interop("front", 50_000, u32::MAX - 20_000);
    interop("back", 50_000, u32::MAX - 20_000);
}

/// Offset of the first byte that is not zero in `page` past the header.
fn first_nonzero(page: &RingPage) -> Option<usize> {
    (64..RingPage::SIZE).find(|&i| {
        let ptr = page.as_ptr().as_ptr().wrapping_add(i);
        // SAFETY: inside the page, past the header, where `abi::ring` also
        // accesses only single bytes as `AtomicU8`.
        unsafe { AtomicU8::from_ptr(ptr) }.load(Ordering::Relaxed) != 0
    })
}

/// Where `Sring` puts request 5 and response `u32::MAX` of a one-page ring.
fn rust_slots<Req: RingEntry, Rsp: RingEntry>(req: Req, rsp: Rsp) -> (usize, usize) {
    let page = RingPage::new();
    let mut front = FrontRing::attach(Sring::<Req, Rsp>::new(&page), 5);
    assert!(front.push_request(req).is_ok());
    let slot_req5 = first_nonzero(&page).expect("request not written");

    let page = RingPage::new();
    let sring = Sring::<Req, Rsp>::new(&page);
    let mut front = FrontRing::attach(sring, u32::MAX);
    let mut back = BackRing::attach(sring, u32::MAX);
    assert!(front.push_request(req).is_ok());
    front.push_requests();
    assert!(back.pop_request().is_some());
    // Clear the request so only the response is found.
    let cleared = first_nonzero(&page).unwrap();
    for i in cleared..cleared + size_of::<Req>() {
        // SAFETY: as in `first_nonzero`.
        unsafe { AtomicU8::from_ptr(page.as_ptr().as_ptr().wrapping_add(i)) }.store(0, Ordering::Relaxed);
    }
    assert!(back.push_response(rsp).is_ok());
    let slot_rsp_max = first_nonzero(&page).expect("response not written");
    (slot_req5, slot_rsp_max)
}

/// Our layout of `Sring<Req, Rsp>` against C's for the same structs: the
/// struct sizes, `sizeof` the entry union, `offsetof(ring)`,
/// `__CONST_RING_SIZE` for one and two pages, and the slot addresses of
/// `RING_GET_REQUEST(5)` and `RING_GET_RESPONSE(0xffffffff)`.
fn compare_layout<Req: RingEntry, Rsp: RingEntry>(name: &str, c: &CLayout, req: Req, rsp: Rsp) -> Vec<String> {
    let two_pages = [const { AtomicU8::new(0) }; 2 * PAGE];
    let base = NonNull::from(&two_pages).cast::<u8>();
    // SAFETY: `two_pages` outlives the view and is only accessed atomically
    // (the view is only asked its size).
    let size8192 = unsafe { Sring::<Req, Rsp>::from_raw(base, 2 * PAGE) }.unwrap().size();
    let (slot_req5, slot_rsp_max) = rust_slots(req, rsp);
    let rust = CLayout {
        req: (size_of::<Req>(), align_of::<Req>()),
        rsp: (size_of::<Rsp>(), align_of::<Rsp>()),
        entry: Sring::<Req, Rsp>::ENTRY_SIZE,
        offset: Sring::<Req, Rsp>::ENTRY_OFFSET,
        size4096: Sring::<Req, Rsp>::PAGE_RING_SIZE,
        size8192,
        slot_req5,
        slot_rsp_max,
    };
    let mut bad = Vec::new();
    let mut check = |what: &str, ours: String, theirs: String| {
        if ours != theirs {
            bad.push(format!("{name}: {what}: Rust {ours}, C {theirs}"));
        }
    };
    check("request size/align", format!("{:?}", rust.req), format!("{:?}", c.req));
    check("response size/align", format!("{:?}", rust.rsp), format!("{:?}", c.rsp));
    check("sizeof(union entry)", rust.entry.to_string(), c.entry.to_string());
    check("offsetof(ring)", rust.offset.to_string(), c.offset.to_string());
    check("__CONST_RING_SIZE(4096)", rust.size4096.to_string(), c.size4096.to_string());
    check("__RING_SIZE(8192)", rust.size8192.to_string(), c.size8192.to_string());
    check("RING_GET_REQUEST(5)", rust.slot_req5.to_string(), c.slot_req5.to_string());
    check("RING_GET_RESPONSE(0xffffffff)", rust.slot_rsp_max.to_string(), c.slot_rsp_max.to_string());
    println!("{name}: {rust:?}");
    bad
}

#[test]
fn ring_layout_matches_xen_ring_h() {
    let c = c_layouts();
    let names: Vec<&str> = c.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ringtest", "oddtest", "widetest"]);
    let mut bad = Vec::new();
    bad.extend(compare_layout("ringtest", &c[0].1, make_request(1), make_response(&make_request(1))));
    bad.extend(compare_layout("oddtest", &c[1].1, OddReq { bytes: [0xa5; 13] }, OddRsp { value: u64::MAX }));
    bad.extend(compare_layout("widetest", &c[2].1, SmallReq { a: 1, b: 2 }, WideRsp { words: [7; 6] }));
    assert!(bad.is_empty(), "Sring disagrees with io/ring.h:\n  {}", bad.join("\n  "));
}

/// The layout comparison can fail: a wrong C answer is reported.
#[test]
fn ring_layout_comparison_catches_mismatches() {
    let mut c = c_layouts().remove(1).1;
    assert!(compare_layout("oddtest", &c, OddReq { bytes: [1; 13] }, OddRsp { value: 1 }).is_empty());
    c.entry = 13;
    c.slot_req5 += 1;
    let bad = compare_layout("oddtest", &c, OddReq { bytes: [1; 13] }, OddRsp { value: 1 });
    assert_eq!(bad.len(), 2, "{bad:?}");
}

#[test]
fn ring_interop_missing_headers_message_says_how_to_fix_it() {
    assert!(headers_missing_message().contains("install libxen-dev"));
}

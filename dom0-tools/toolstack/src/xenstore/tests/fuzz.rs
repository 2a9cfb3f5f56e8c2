//! Randomized input: raw bytes, plausible requests and hostile ring pages
//! never panic and never break the store's invariants.

use super::*;

/// xorshift64*: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// A name that is often valid: components from a small set, sometimes
    /// relative, sometimes special, sometimes broken.
    fn name(&mut self) -> Vec<u8> {
        const PARTS: &[&str] = &["a", "b", "data", "name", "local", "domain", "1", "2", "0", "x-y_z", "@i"];
        let mut s = match self.below(6) {
            0 => String::from("/local/domain/1"),
            1 => String::from("@releaseDomain"),
            2 | 3 => String::new(),
            _ => String::from("/"),
        };
        let parts = self.below(4) + u64::from(s.is_empty());
        for i in 0..parts {
            if i > 0 || (!s.is_empty() && !s.ends_with('/')) {
                s.push('/');
            }
            s.push_str(PARTS[self.below(PARTS.len() as u64) as usize]);
        }
        let mut v = s.into_bytes();
        if self.below(10) == 0 {
            v.extend(self.bytes(3));
        }
        v
    }

    /// A request payload for `type_`.
    fn payload(&mut self, type_: u32) -> Vec<u8> {
        let mut p = self.name();
        match type_ {
            XS_WRITE => {
                p.push(0);
                let n = self.below(40) as usize;
                p.extend(self.bytes(n));
            }
            XS_SET_PERMS => {
                p.push(0);
                for _ in 0..self.below(4) {
                    p.push(b"nrwbx"[self.below(5) as usize]);
                    p.extend(self.below(4).to_string().bytes());
                    p.push(0);
                }
            }
            XS_WATCH | XS_UNWATCH | XS_DIRECTORY_PART => {
                p.push(0);
                p.extend(self.below(300).to_string().bytes());
                p.push(0);
            }
            XS_TRANSACTION_END => p = if self.below(2) == 0 { b"T\0".to_vec() } else { b"F\0".to_vec() },
            XS_INTRODUCE => {
                p = zz(&[&self.below(6).to_string(), &self.below(9999).to_string(), &self.below(9).to_string()]);
            }
            XS_RELEASE | XS_GET_DOMAIN_PATH | XS_IS_DOMAIN_INTRODUCED | XS_RESUME => {
                p = z(&self.below(6).to_string());
            }
            _ => {
                if self.below(8) != 0 {
                    p.push(0);
                }
            }
        }
        p
    }
}

#[test]
fn random_input_never_panics_and_keeps_the_store_consistent() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut h = H::with(Quotas { max_nodes: 60, max_transaction_nodes: 40, ..Quotas::DEFAULT });
    // Domain 3's connection is the one pumped through a ring page; the
    // page takes its output, so its replies are not counted below.
    let ring_conn = h.domu(3);
    let mut conns = vec![h.dom0(), h.domu(1), h.domu(2), ring_conn];
    let mut page = Box::new(XenstoreDomainInterface::zeroed());
    let mut buf = [0u8; 512];
    // What the clients were sent, to show the run reached past the parser.
    let mut readers: BTreeMap<ConnId, MessageReader> = BTreeMap::new();
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    for _ in 0..30_000 {
        let id = conns[rng.below(conns.len() as u64) as usize];
        match rng.below(10) {
            // Raw bytes, any length.
            0 => {
                let n = rng.below(64) as usize;
                let bytes = rng.bytes(n);
                if h.xs.feed(id, &bytes).is_err() {
                    let _ = h.xs.reset(id);
                    readers.remove(&id);
                }
            }
            // A hostile ring page.
            1 => {
                let n = rng.below(3000) as usize;
                let junk = rng.bytes(n);
                for (i, b) in junk.iter().enumerate() {
                    page.req[i % XENSTORE_RING_SIZE] = *b;
                }
                page.req_cons = rng.next() as u32;
                page.req_prod = page.req_cons.wrapping_add(rng.below(1100) as u32);
                page.rsp_cons = rng.next() as u32;
                page.rsp_prod = page.rsp_cons.wrapping_add(rng.below(1100) as u32);
                page.connection = rng.below(3) as u32;
                if pump(&mut h.xs, ring_conn, page.as_mut()).is_err() {
                    let _ = h.xs.reset(ring_conn);
                }
            }
            // Introduce or release something.
            2 => {
                let domid = rng.below(5) as u16;
                if rng.below(2) == 0 {
                    if let Ok(new) = h.xs.introduce(domid, rng.below(3), 1) {
                        conns.push(new);
                    }
                } else if h.xs.release(domid).is_ok() {
                    conns.retain(|c| h.xs.connection(*c).is_some());
                }
                if conns.is_empty() {
                    conns.push(h.dom0());
                }
            }
            // A plausible request, sometimes split, sometimes in a transaction.
            _ => {
                let type_ = rng.below(XS_TYPE_COUNT as u64 + 2) as u32;
                let payload = rng.payload(type_);
                let tx = if rng.below(3) == 0 { rng.below(4) as u32 } else { 0 };
                let mut msg = encode(type_, rng.next() as u32, tx, &payload);
                if rng.below(50) == 0 {
                    msg[12..16].copy_from_slice(&(rng.next() as u32).to_ne_bytes());
                }
                let cut = rng.below(msg.len() as u64 + 1) as usize;
                for part in [&msg[..cut], &msg[cut..]] {
                    if h.xs.feed(id, part).is_err() {
                        let _ = h.xs.reset(id);
                        readers.remove(&id);
                    }
                }
            }
        }
        // Clients read their replies, mostly.
        if rng.below(4) != 0 {
            for &c in conns.iter().filter(|&&c| c != ring_conn) {
                loop {
                    let n = h.xs.drain_output(c, &mut buf);
                    if n == 0 {
                        break;
                    }
                    for (m, _) in readers.entry(c).or_default().push(&buf[..n]).unwrap() {
                        *seen.entry(m.type_).or_default() += 1;
                    }
                }
            }
        }
    }
    check_store(h.xs.store());
    for type_ in [XS_READ, XS_WRITE, XS_DIRECTORY, XS_WATCH_EVENT, XS_ERROR, XS_TRANSACTION_START, XS_SET_PERMS] {
        assert!(seen.get(&type_).copied().unwrap_or(0) > 20, "type {type_} was seen only {seen:?}");
    }
    assert!(h.xs.store().len() > 20, "the store grew to {}", h.xs.store().len());
    for &c in &conns {
        if let Some(conn) = h.xs.connection(c) {
            assert!(conn.pending_output() <= h.xs.quotas().max_output + 2 * (HEADER_LEN + 4096));
            assert!(conn.watch_count() <= h.xs.quotas().max_watches);
            assert!(conn.transaction_count() <= h.xs.quotas().max_transactions);
        }
    }
}

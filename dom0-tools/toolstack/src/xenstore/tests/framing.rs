//! Message framing (xenstore.txt "General", xs_wire.h): partial and
//! back-to-back messages, oversized ones, back-pressure, and the quotas
//! that bound what a domain can make the daemon hold.

use super::*;

/// A read request for `path` with request id `req`.
fn read_req(req: u32, path: &str) -> Vec<u8> {
    encode(XS_READ, req, 0, &z(path))
}

#[test]
fn a_message_may_arrive_a_byte_at_a_time() {
    let mut h = H::new();
    let d0 = h.dom0();
    h.write(d0, "/f", "v").unwrap();
    let msg = read_req(5, "/f");
    for (i, b) in msg.iter().enumerate() {
        assert_eq!(h.xs.feed(d0, std::slice::from_ref(b)), Ok(1));
        let waiting = h.xs.pending_output(d0);
        assert_eq!(waiting > 0, i == msg.len() - 1, "a reply only once the message is whole");
    }
    let out = h.drain(d0);
    let msgs = MessageReader::new().push(&out).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!((msgs[0].0.req_id, &msgs[0].1[..]), (5, &b"v"[..]));
}

#[test]
fn messages_back_to_back_are_answered_in_order() {
    let mut h = H::new();
    let d0 = h.dom0();
    h.write(d0, "/f", "v").unwrap();
    let mut bytes = Vec::new();
    for req in 1..=5 {
        bytes.extend(read_req(req, if req % 2 == 0 { "/f" } else { "/missing" }));
    }
    bytes.extend(encode(XS_WRITE, 6, 0, b"/g\0"));
    let (a, b) = bytes.split_at(37);
    assert_eq!(h.xs.feed(d0, a), Ok(a.len()));
    assert_eq!(h.xs.feed(d0, b), Ok(b.len()));
    let out = h.drain(d0);
    let msgs = MessageReader::new().push(&out).unwrap();
    let got: Vec<(u32, u32)> = msgs.iter().map(|(m, _)| (m.req_id, m.type_)).collect();
    assert_eq!(got, [(1, XS_ERROR), (2, XS_READ), (3, XS_ERROR), (4, XS_READ), (5, XS_ERROR), (6, XS_WRITE)]);
}

#[test]
fn a_zero_length_message_is_whole_at_its_header() {
    let mut h = H::new();
    let d0 = h.dom0();
    assert_eq!(h.call(d0, XS_READ, b""), Err(Errno::EINVAL));
    assert_eq!(h.call(d0, XS_RESET_WATCHES, b"").unwrap(), b"OK\0");
}

#[test]
fn a_payload_over_the_maximum_stops_the_connection_alone() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d1 = h.domu(1);
    let mut hdr = encode(XS_WRITE, 1, 0, b"");
    hdr[12..16].copy_from_slice(&(XENSTORE_PAYLOAD_MAX + 1).to_ne_bytes());
    assert_eq!(h.xs.feed(d1, &hdr[..10]), Ok(10), "not known until the length arrives");
    assert_eq!(h.xs.feed(d1, &hdr[10..]), Err(ConnError::Protocol));
    assert_eq!(h.xs.connection(d1).unwrap().error(), Some(ConnError::Protocol));
    assert_eq!(h.xs.feed(d1, &read_req(2, "name")), Err(ConnError::Protocol), "it stays stopped");
    assert_eq!(h.xs.pending_output(d1), 0);
    h.write(d0, "/fine", "yes").unwrap();
    h.xs.reset(d1).unwrap();
    assert_eq!(h.read(d1, "name").unwrap(), "d1", "a reset brings it back");
}

#[test]
fn a_payload_of_exactly_the_maximum_is_accepted() {
    let mut h = H::new();
    let d0 = h.dom0();
    let mut p = z("/big");
    p.resize(XENSTORE_PAYLOAD_MAX as usize, b'x');
    assert_eq!(h.call(d0, XS_WRITE, &p).unwrap(), b"OK\0");
    assert_eq!(h.read(d0, "/big").unwrap().len(), XENSTORE_PAYLOAD_MAX as usize - 5);
}

#[test]
fn a_reply_that_would_not_fit_a_message_is_e2big() {
    let mut h = H::new();
    let d0 = h.dom0();
    h.xs.write(0, "/huge", &[b'h'; 5000]).unwrap();
    assert_eq!(h.read(d0, "/huge"), Err(Errno::E2BIG));
}

#[test]
fn a_client_not_reading_its_replies_stops_being_read() {
    let mut h = H::new();
    let d0 = h.dom0();
    h.xs.write(0, "/v", &[b'v'; 1000]).unwrap();
    let mut bytes = Vec::new();
    for req in 0..100 {
        bytes.extend(read_req(req, "/v"));
    }
    let taken = h.xs.feed(d0, &bytes).unwrap();
    assert!(taken < bytes.len(), "took {taken} of {}", bytes.len());
    let waiting = h.xs.pending_output(d0);
    let q = h.xs.quotas();
    assert!(waiting >= q.output_high_water && waiting < q.output_high_water + 1016 + HEADER_LEN);
    // Once it reads, the rest goes through.
    let mut rest = &bytes[taken..];
    let mut replies = MessageReader::new().push(&h.drain(d0)).unwrap().len();
    while !rest.is_empty() {
        let n = h.xs.feed(d0, rest).unwrap();
        rest = &rest[n..];
        replies += MessageReader::new().push(&h.drain(d0)).unwrap().len();
    }
    assert_eq!(replies, 100);
}

#[test]
fn watch_events_for_a_client_not_reading_are_dropped_not_hoarded() {
    let mut h = H::with(Quotas { max_output: 4096, ..Quotas::DEFAULT });
    let d0 = h.dom0();
    let lazy = h.dom0();
    h.watch(lazy, "/e", "t").unwrap();
    for i in 0..1000 {
        h.write(d0, "/e", &i.to_string()).unwrap();
    }
    let conn = h.xs.connection(lazy).unwrap();
    assert!(conn.pending_output() < 4096 + 64);
    assert!(conn.dropped_events() > 700, "{}", conn.dropped_events());
}

#[test]
fn a_domu_is_held_to_its_node_quota() {
    let mut h = H::with(Quotas { max_nodes: 4, ..Quotas::DEFAULT });
    let d0 = h.dom0();
    let d1 = h.domu(1);
    assert_eq!(h.xs.store().owned_by(1), 1, "its home");
    h.write(d1, "a", "").unwrap();
    h.write(d1, "b", "").unwrap();
    assert_eq!(h.write(d1, "x/y", ""), Err(Errno::ENOSPC), "two new nodes do not fit");
    assert_eq!(h.read(d1, "x"), Err(Errno::ENOENT), "and neither was made");
    h.write(d1, "c", "").unwrap();
    assert_eq!(h.write(d1, "d", ""), Err(Errno::ENOSPC));
    assert_eq!(h.call(d1, XS_MKDIR, &z("d")), Err(Errno::ENOSPC));
    h.write(d1, "c", "rewriting is fine").unwrap();
    h.call(d1, XS_RM, &z("c")).unwrap();
    h.write(d1, "d", "").unwrap();
    // Dom0 is not held to it.
    h.write(d0, "/local/domain/1/more/and/more", "").unwrap();
    assert_eq!(h.xs.store().owned_by(1), 7);
    check_store(h.xs.store());
}

#[test]
fn a_domu_is_held_to_value_size_and_permission_count() {
    let mut h = H::with(Quotas { max_value: 100, max_perms: 3, ..Quotas::DEFAULT });
    let d0 = h.dom0();
    let d1 = h.domu(1);
    h.write(d1, "v", &"x".repeat(100)).unwrap();
    assert_eq!(h.write(d1, "v", &"x".repeat(101)), Err(Errno::ENOSPC));
    assert_eq!(h.read(d1, "v").unwrap().len(), 100);
    h.set_perms(d1, "v", &["n1", "r2", "r3"]).unwrap();
    assert_eq!(h.set_perms(d1, "v", &["n1", "r2", "r3", "r4"]), Err(Errno::ENOSPC));
    h.write(d0, "/local/domain/1/v", &"x".repeat(1000)).unwrap();
}

#[test]
fn requests_on_a_closed_connection_are_refused() {
    let mut h = H::new();
    let d0 = h.dom0();
    h.xs.disconnect(d0);
    assert_eq!(h.xs.feed(d0, &read_req(1, "/")), Err(ConnError::NoSuchConnection));
    assert_eq!(h.xs.drain_output(d0, &mut [0; 16]), 0);
    assert_eq!(h.xs.reset(d0), Err(ConnError::NoSuchConnection));
}

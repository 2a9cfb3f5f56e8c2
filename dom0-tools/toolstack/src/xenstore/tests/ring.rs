//! The ring page (xenstore-ring.txt): requests in, replies out, indices
//! that wrap, hostile indices, a full reply ring, reconnection.

use super::*;

/// What a guest does: writes a request into the ring.
fn guest_send(page: &mut XenstoreDomainInterface, bytes: &[u8]) {
    for &b in bytes {
        page.req[(page.req_prod as usize) % XENSTORE_RING_SIZE] = b;
        page.req_prod = page.req_prod.wrapping_add(1);
    }
}

/// What a guest does: takes every reply byte out of the ring.
fn guest_recv(page: &mut XenstoreDomainInterface) -> Vec<u8> {
    let mut out = Vec::new();
    while page.rsp_cons != page.rsp_prod {
        out.push(page.rsp[(page.rsp_cons as usize) % XENSTORE_RING_SIZE]);
        page.rsp_cons = page.rsp_cons.wrapping_add(1);
    }
    out
}

/// A daemon with domain 1 introduced, and its page.
fn setup() -> (H, ConnId, Box<XenstoreDomainInterface>) {
    let mut h = H::new();
    let id = h.domu(1);
    let mut page = Box::new(XenstoreDomainInterface::zeroed());
    init_page(page.as_mut());
    (h, id, page)
}

#[test]
fn the_page_advertises_reconnection_and_the_error_field() {
    let mut page = XenstoreDomainInterface::zeroed();
    page.server_features = 0x100;
    init_page(&mut page);
    assert_eq!(
        page.server_features,
        0x100 | XENSTORE_SERVER_FEATURE_RECONNECTION | XENSTORE_SERVER_FEATURE_ERROR,
        "features are only added"
    );
}

#[test]
fn requests_in_the_ring_are_answered_in_the_ring() {
    let (mut h, id, mut page) = setup();
    guest_send(&mut page, &encode(XS_READ, 1, 0, &z("name")));
    guest_send(&mut page, &encode(XS_WRITE, 2, 0, b"data/x\0v"));
    let done = pump(&mut h.xs, id, page.as_mut()).unwrap();
    assert!(done.notify());
    assert_eq!(page.req_cons, page.req_prod);
    let msgs = MessageReader::new().push(&guest_recv(&mut page)).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].1, b"d1");
    assert_eq!(msgs[1].1, b"OK\0");
    assert_eq!(done.consumed, page.req_prod as usize);
    assert_eq!(done.produced, page.rsp_prod as usize);
    let idle = pump(&mut h.xs, id, page.as_mut()).unwrap();
    assert!(!idle.notify(), "nothing to do: no event");
}

#[test]
fn indices_wrap_around_two_to_the_32() {
    let (mut h, id, mut page) = setup();
    let start = u32::MAX - 20;
    (page.req_cons, page.req_prod, page.rsp_cons, page.rsp_prod) = (start, start, start, start);
    for round in 0..40u32 {
        guest_send(&mut page, &encode(XS_READ, round, 0, &z("domid")));
        pump(&mut h.xs, id, page.as_mut()).unwrap();
        let msgs = MessageReader::new().push(&guest_recv(&mut page)).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!((msgs[0].0.req_id, &msgs[0].1[..]), (round, &b"1"[..]));
    }
    assert!(page.req_prod < start, "the indices wrapped");
}

#[test]
fn a_request_larger_than_the_ring_arrives_in_pieces() {
    let (mut h, id, mut page) = setup();
    let mut p = z("data/big");
    p.extend(std::iter::repeat_n(b'b', 3000));
    let msg = encode(XS_WRITE, 1, 0, &p);
    let mut sent = 0;
    let mut replies = Vec::new();
    while sent < msg.len() {
        let room = XENSTORE_RING_SIZE - page.req_prod.wrapping_sub(page.req_cons) as usize;
        let n = room.min(msg.len() - sent);
        guest_send(&mut page, &msg[sent..sent + n]);
        sent += n;
        pump(&mut h.xs, id, page.as_mut()).unwrap();
        replies.extend(guest_recv(&mut page));
    }
    let msgs = MessageReader::new().push(&replies).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].1, b"OK\0");
    assert_eq!(h.xs.read(1, "data/big").unwrap().len(), 3000);
}

#[test]
fn replies_wait_while_the_reply_ring_is_full() {
    let (mut h, id, mut page) = setup();
    h.xs.write(1, "data/v", &[b'v'; 300]).unwrap();
    for req in 0..8 {
        guest_send(&mut page, &encode(XS_READ, req, 0, &z("data/v")));
    }
    pump(&mut h.xs, id, page.as_mut()).unwrap();
    assert_eq!(page.rsp_prod.wrapping_sub(page.rsp_cons) as usize, XENSTORE_RING_SIZE, "full");
    assert!(h.xs.pending_output(id) > 0);
    let mut out = Vec::new();
    while out.len() < 8 * (HEADER_LEN + 300) {
        out.extend(guest_recv(&mut page));
        pump(&mut h.xs, id, page.as_mut()).unwrap();
    }
    let msgs = MessageReader::new().push(&out).unwrap();
    assert_eq!(msgs.iter().map(|(m, _)| m.req_id).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
}

#[test]
fn a_request_index_beyond_the_ring_stops_the_connection() {
    let (mut h, id, mut page) = setup();
    page.req_prod = page.req_cons.wrapping_add(XENSTORE_RING_SIZE as u32 + 1);
    assert_eq!(pump(&mut h.xs, id, page.as_mut()), Err(ConnError::RingIndex));
    assert_eq!(page.error, XENSTORE_ERROR_RINGIDX);
    assert_eq!(h.xs.connection(id).unwrap().error(), Some(ConnError::RingIndex));
    // Even once the indices look sane again, it stays stopped.
    page.req_prod = page.req_cons;
    assert_eq!(pump(&mut h.xs, id, page.as_mut()), Err(ConnError::RingIndex));
    // Consumer behind producer the other way round is as bad.
    let (mut h, id, mut page) = setup();
    page.req_cons = 10;
    page.req_prod = 5;
    assert_eq!(pump(&mut h.xs, id, page.as_mut()), Err(ConnError::RingIndex));
}

#[test]
fn a_reply_index_beyond_the_ring_stops_the_connection() {
    let (mut h, id, mut page) = setup();
    page.rsp_cons = 0;
    page.rsp_prod = 2000;
    guest_send(&mut page, &encode(XS_READ, 1, 0, &z("name")));
    assert_eq!(pump(&mut h.xs, id, page.as_mut()), Err(ConnError::RingIndex));
    assert_eq!(page.error, XENSTORE_ERROR_RINGIDX);
}

#[test]
fn an_oversized_message_in_the_ring_sets_the_protocol_error() {
    let (mut h, id, mut page) = setup();
    let mut hdr = encode(XS_READ, 1, 0, b"");
    hdr[12..16].copy_from_slice(&u32::MAX.to_ne_bytes());
    guest_send(&mut page, &hdr);
    assert_eq!(pump(&mut h.xs, id, page.as_mut()), Err(ConnError::Protocol));
    assert_eq!(page.error, XENSTORE_ERROR_PROTO);
}

#[test]
fn a_reconnection_resets_the_ring_and_the_connection() {
    let (mut h, id, mut page) = setup();
    guest_send(&mut page, &encode(XS_WATCH, 1, 0, &zz(&["data", "t"])));
    pump(&mut h.xs, id, page.as_mut()).unwrap();
    assert_eq!(h.xs.connection(id).unwrap().watch_count(), 1);
    page.req_prod = page.req_cons.wrapping_add(5000);
    assert_eq!(pump(&mut h.xs, id, page.as_mut()), Err(ConnError::RingIndex));
    // The guest asks to reconnect.
    page.connection = XENSTORE_RECONNECT;
    let done = pump(&mut h.xs, id, page.as_mut()).unwrap();
    assert!(done.reconnected && done.notify());
    assert_eq!(page.connection, XENSTORE_CONNECTED);
    assert_eq!(page.error, XENSTORE_ERROR_NONE);
    assert_eq!((page.req_cons, page.req_prod, page.rsp_cons, page.rsp_prod), (0, 0, 0, 0));
    let conn = h.xs.connection(id).unwrap();
    assert_eq!((conn.error(), conn.watch_count(), conn.pending_output()), (None, 0, 0));
    guest_send(&mut page, &encode(XS_READ, 2, 0, &z("name")));
    pump(&mut h.xs, id, page.as_mut()).unwrap();
    let msgs = MessageReader::new().push(&guest_recv(&mut page)).unwrap();
    assert_eq!(msgs[0].1, b"d1");
}

#[test]
fn watch_events_for_a_domain_reach_its_ring() {
    let (mut h, id, mut page) = setup();
    guest_send(&mut page, &encode(XS_WATCH, 1, 0, &zz(&["control/shutdown", "sd"])));
    pump(&mut h.xs, id, page.as_mut()).unwrap();
    guest_recv(&mut page);
    h.xs.write(0, "/local/domain/1/control/shutdown", b"poweroff").unwrap();
    assert_eq!(h.xs.connections_with_output().collect::<Vec<_>>(), [id]);
    pump(&mut h.xs, id, page.as_mut()).unwrap();
    let msgs = MessageReader::new().push(&guest_recv(&mut page)).unwrap();
    assert_eq!(msgs[0].0.type_, XS_WATCH_EVENT);
    assert_eq!(msgs[0].1, b"control/shutdown\0sd\0");
}

//! Watches (xenstore.txt "Watches"): the first event, events for changes
//! at and under the watched node, removal, relative names, permissions and
//! the special nodes.

use super::*;

#[test]
fn a_watch_fires_once_at_once_then_on_each_change_at_or_under_it() {
    let mut h = H::new();
    let d0 = h.dom0();
    h.watch(d0, "/w", "tok").unwrap();
    assert_eq!(h.events(d0), ev(&[("/w", "tok")]), "the first event, even for a missing node");
    h.write(d0, "/w", "1").unwrap();
    h.write(d0, "/w/a/b", "2").unwrap();
    h.write(d0, "/wx", "3").unwrap();
    h.write(d0, "/", "").unwrap();
    h.call(d0, XS_MKDIR, &z("/w/m")).unwrap();
    h.call(d0, XS_MKDIR, &z("/w/m")).unwrap();
    h.set_perms(d0, "/w/m", &["n0"]).unwrap();
    assert_eq!(h.events(d0), ev(&[("/w", "tok"), ("/w/a/b", "tok"), ("/w/m", "tok"), ("/w/m", "tok")]));
}

#[test]
fn the_first_event_follows_the_ok_reply() {
    let mut h = H::new();
    let d0 = h.dom0();
    let msg = encode(XS_WATCH, 9, 0, &zz(&["/x", "t"]));
    assert_eq!(h.xs.feed(d0, &msg), Ok(msg.len()));
    let out = h.drain(d0);
    let msgs = MessageReader::new().push(&out).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!((msgs[0].0.type_, msgs[0].0.req_id), (XS_WATCH, 9));
    assert_eq!(msgs[0].1, b"OK\0");
    assert_eq!(msgs[1].0.type_, XS_WATCH_EVENT);
    assert_eq!(msgs[1].1, b"/x\0t\0");
}

#[test]
fn removing_a_subtree_fires_watches_above_with_its_path_and_below_with_theirs() {
    let mut h = H::new();
    let d0 = h.dom0();
    h.write(d0, "/t/a/b/c", "").unwrap();
    h.watch(d0, "/t", "up").unwrap();
    h.watch(d0, "/t/a/b", "down").unwrap();
    h.watch(d0, "/t/other", "aside").unwrap();
    h.events(d0);
    h.call(d0, XS_RM, &z("/t/a")).unwrap();
    let mut got = h.events(d0);
    got.sort();
    assert_eq!(got, ev(&[("/t/a", "up"), ("/t/a/b", "down")]));
}

#[test]
fn a_relative_watch_hears_relative_names() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d1 = h.domu(1);
    h.watch(d1, "device", "dev").unwrap();
    assert_eq!(h.events(d1), ev(&[("device", "dev")]));
    h.write(d0, "/local/domain/1/device/vif/0", "x").unwrap();
    h.write(d1, "/local/domain/1/device/vbd", "").unwrap();
    assert_eq!(h.events(d1), ev(&[("device/vif/0", "dev"), ("device/vbd", "dev")]));
    h.watch(d1, "/local/domain/1/control", "abs").unwrap();
    h.write(d1, "control/shutdown", "poweroff").unwrap();
    assert_eq!(h.events(d1), ev(&[("/local/domain/1/control", "abs"), ("/local/domain/1/control/shutdown", "abs")]));
    // The relative and absolute forms are the same watch.
    assert_eq!(h.watch(d1, "/local/domain/1/device", "dev"), Err(Errno::EEXIST));
}

#[test]
fn events_go_only_to_connections_that_may_read_the_node() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d1 = h.domu(1);
    let d2 = h.domu(2);
    // Anyone may watch anything; the first event carries no information.
    h.watch(d2, "/local/domain/1", "spy").unwrap();
    h.watch(d1, "/local/domain/1", "own").unwrap();
    assert_eq!(h.events(d2), ev(&[("/local/domain/1", "spy")]));
    h.events(d1);
    h.write(d0, "/local/domain/1/data/secret", "x").unwrap();
    h.write(d1, "data/mine", "y").unwrap();
    h.call(d1, XS_RM, &z("data")).unwrap();
    assert_eq!(h.events(d2), ev(&[]), "nothing of domain 1 leaks to domain 2");
    assert_eq!(h.events(d1).len(), 3);
    // Once shared, it hears.
    h.write(d1, "pub", "").unwrap();
    h.set_perms(d1, "pub", &["n1", "r2"]).unwrap();
    h.write(d1, "pub", "hello").unwrap();
    assert_eq!(h.events(d2), ev(&[("/local/domain/1/pub", "spy")]));
}

#[test]
fn watches_are_per_path_and_token_and_unwatch_removes_one() {
    let mut h = H::new();
    let d0 = h.dom0();
    h.watch(d0, "/u", "a").unwrap();
    h.watch(d0, "/u", "b").unwrap();
    assert_eq!(h.watch(d0, "/u", "a"), Err(Errno::EEXIST));
    h.events(d0);
    h.write(d0, "/u", "").unwrap();
    assert_eq!(h.events(d0), ev(&[("/u", "a"), ("/u", "b")]));
    assert_eq!(h.call(d0, XS_UNWATCH, &zz(&["/u", "a"])).unwrap(), b"OK\0");
    assert_eq!(h.call(d0, XS_UNWATCH, &zz(&["/u", "a"])), Err(Errno::ENOENT));
    assert_eq!(h.call(d0, XS_UNWATCH, &zz(&["/u"])), Err(Errno::EINVAL));
    h.write(d0, "/u", "").unwrap();
    assert_eq!(h.events(d0), ev(&[("/u", "b")]));
    assert_eq!(h.call(d0, XS_RESET_WATCHES, b"").unwrap(), b"OK\0");
    h.write(d0, "/u", "").unwrap();
    assert_eq!(h.events(d0), ev(&[]));
    assert_eq!(h.call(d0, XS_WATCH, &zz(&["/a b", "t"])), Err(Errno::EINVAL));
    assert_eq!(h.call(d0, XS_WATCH, b"/a\0t"), Err(Errno::EINVAL));
}

#[test]
fn watches_per_connection_are_capped() {
    let mut h = H::with(Quotas { max_watches: 3, ..Quotas::DEFAULT });
    let d1 = h.domu(1);
    for i in 0..3 {
        h.watch(d1, "x", &i.to_string()).unwrap();
    }
    assert_eq!(h.watch(d1, "x", "3"), Err(Errno::E2BIG));
    assert_eq!(h.xs.connection(d1).unwrap().watch_count(), 3);
}

#[test]
fn introduce_and_release_fire_the_special_watches_for_dom0_only() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d1 = h.domu(1);
    h.watch(d0, "@introduceDomain", "i").unwrap();
    h.watch(d0, "@releaseDomain", "r").unwrap();
    h.watch(d1, "@releaseDomain", "r1").unwrap();
    h.watch(d1, "@introduceDomain", "i1").unwrap();
    assert_eq!(h.events(d0), ev(&[("@introduceDomain", "i"), ("@releaseDomain", "r")]));
    h.events(d1);
    let d3 = h.xs.introduce(3, 0x3000, 5).unwrap();
    assert_eq!(h.xs.introduce(3, 0x3000, 5), Ok(d3), "the same ring again: the same connection");
    assert_eq!(h.xs.introduce(3, 0x3001, 5), Err(Errno::EEXIST));
    assert_eq!(h.xs.connection(d3).unwrap().ring(), Some(RingInfo { gfn: 0x3000, port: 5 }));
    h.xs.release(3).unwrap();
    assert_eq!(h.xs.release(3), Err(Errno::ENOENT));
    assert!(h.xs.connection(d3).is_none());
    assert_eq!(h.events(d0), ev(&[("@introduceDomain", "i"), ("@releaseDomain", "r")]));
    assert_eq!(h.events(d1), ev(&[]), "other domains' lives are dom0's business");
    // Dom0 may let a domain hear them.
    h.set_perms(d0, "@releaseDomain", &["n0", "r1"]).unwrap();
    assert_eq!(h.perms(d0, "@releaseDomain").unwrap(), "n0,r1");
    assert_eq!(h.set_perms(d1, "@releaseDomain", &["n0", "r1", "r2"]), Err(Errno::EACCES));
    assert_eq!(h.perms(d1, "@introduceDomain"), Err(Errno::EACCES));
    assert_eq!(h.perms(d0, "@other"), Err(Errno::ENOENT));
    h.xs.introduce(4, 0x4000, 5).unwrap();
    h.xs.release(4).unwrap();
    assert_eq!(h.events(d1), ev(&[("@releaseDomain", "r1")]));
}

#[test]
fn introduce_and_release_on_the_wire_are_dom0s() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d1 = h.domu(1);
    h.watch(d0, "@introduceDomain", "i").unwrap();
    h.events(d0);
    assert_eq!(h.call(d1, XS_INTRODUCE, &zz(&["7", "4096", "3"])), Err(Errno::EACCES));
    assert_eq!(h.call(d1, XS_RELEASE, &z("1")), Err(Errno::EACCES));
    assert_eq!(h.call(d1, XS_IS_DOMAIN_INTRODUCED, &z("1")), Err(Errno::EACCES));
    assert_eq!(h.call(d0, XS_IS_DOMAIN_INTRODUCED, &z("7")).unwrap(), b"F\0");
    assert_eq!(h.call(d0, XS_INTRODUCE, &zz(&["7", "4096", "3"])).unwrap(), b"OK\0");
    assert_eq!(h.events(d0), ev(&[("@introduceDomain", "i")]));
    let d7 = h.xs.domain_connection(7).unwrap();
    assert_eq!(h.xs.connection(d7).unwrap().ring(), Some(RingInfo { gfn: 4096, port: 3 }));
    assert_eq!(h.call(d0, XS_IS_DOMAIN_INTRODUCED, &z("7")).unwrap(), b"T\0");
    assert_eq!(h.call(d0, XS_RESUME, &z("7")).unwrap(), b"OK\0");
    assert_eq!(h.call(d0, XS_INTRODUCE, &zz(&["7", "4096"])), Err(Errno::EINVAL));
    assert_eq!(h.call(d0, XS_INTRODUCE, &zz(&["7", "x", "3"])), Err(Errno::EINVAL));
    assert_eq!(h.call(d0, XS_INTRODUCE, &zz(&["7", "1", "3"])), Err(Errno::EEXIST));
    assert_eq!(h.call(d0, XS_RELEASE, &z("0")), Err(Errno::EINVAL));
    assert_eq!(h.call(d0, XS_RELEASE, &z("7")).unwrap(), b"OK\0");
    assert_eq!(h.call(d0, XS_RELEASE, &z("7")), Err(Errno::ENOENT));
    assert_eq!(h.call(d0, XS_RESUME, &z("7")), Err(Errno::ENOENT));
}

#[test]
fn an_event_too_long_for_a_message_is_dropped() {
    let mut h = H::new();
    let d0 = h.dom0();
    let token = "t".repeat(3000);
    h.watch(d0, "/l", &token).unwrap();
    h.events(d0);
    let deep = format!("/l/{}", "n".repeat(1500));
    h.write(d0, &deep, "").unwrap();
    h.write(d0, "/l", "").unwrap();
    assert_eq!(h.events(d0), ev(&[("/l", &token)]));
    assert_eq!(h.xs.connection(d0).unwrap().dropped_events(), 1);
}

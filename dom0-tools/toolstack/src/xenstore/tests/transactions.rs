//! Transactions (xenstore.txt "Transactions"): a private view, atomic
//! commit, `EAGAIN` on conflict, abort, and their limits.

use super::*;

#[test]
fn a_committed_transaction_appears_at_once_and_only_then() {
    let mut h = H::new();
    let d0 = h.dom0();
    let other = h.dom0();
    h.write(d0, "/t/old", "gone soon").unwrap();
    h.watch(other, "/t", "w").unwrap();
    h.events(other);
    let tx = h.tx_start(d0);
    assert_ne!(tx, 0);
    let mut p = z("/t/a");
    p.extend_from_slice(b"1");
    h.raw(d0, XS_WRITE, tx, &p).unwrap();
    h.raw(d0, XS_MKDIR, tx, &z("/t/b/c")).unwrap();
    h.raw(d0, XS_RM, tx, &z("/t/old")).unwrap();
    assert_eq!(h.raw(d0, XS_READ, tx, &z("/t/a")).unwrap(), b"1", "the transaction sees its writes");
    assert_eq!(h.raw(d0, XS_READ, tx, &z("/t/old")), Err(Errno::ENOENT));
    assert_eq!(h.raw(d0, XS_DIRECTORY, tx, &z("/t")).unwrap(), b"a\0b\0");
    assert_eq!(h.read(other, "/t/a"), Err(Errno::ENOENT), "others do not");
    assert_eq!(h.read(other, "/t/old").unwrap(), "gone soon");
    assert_eq!(h.events(other), ev(&[]), "no events before the commit");
    h.tx_end(d0, tx, true).unwrap();
    assert_eq!(h.read(other, "/t/a").unwrap(), "1");
    assert_eq!(h.read(other, "/t/b/c").unwrap(), "");
    assert_eq!(h.read(other, "/t/old"), Err(Errno::ENOENT));
    let mut got = h.events(other);
    got.sort();
    assert_eq!(got, ev(&[("/t/a", "w"), ("/t/b/c", "w"), ("/t/old", "w")]));
    assert_eq!(h.tx_end(d0, tx, true), Err(Errno::ENOENT), "it is over");
    check_store(h.xs.store());
}

#[test]
fn a_transaction_whose_reads_changed_meanwhile_fails_with_eagain() {
    let mut h = H::new();
    let d0 = h.dom0();
    let other = h.dom0();
    h.write(d0, "/c/a", "1").unwrap();
    h.write(d0, "/c/b", "").unwrap();
    let tx = h.tx_start(d0);
    assert_eq!(h.raw(d0, XS_READ, tx, &z("/c/a")).unwrap(), b"1");
    h.write(other, "/c/a", "2").unwrap();
    let mut p = z("/c/b");
    p.extend_from_slice(b"from tx");
    h.raw(d0, XS_WRITE, tx, &p).unwrap();
    assert_eq!(h.tx_end(d0, tx, true), Err(Errno::EAGAIN));
    assert_eq!(h.read(d0, "/c/b").unwrap(), "", "nothing of it was applied");
    assert_eq!(h.xs.connection(d0).unwrap().transaction_count(), 0, "and it is over");
}

#[test]
fn a_node_created_where_a_transaction_saw_none_is_a_conflict() {
    let mut h = H::new();
    let d0 = h.dom0();
    let other = h.dom0();
    h.write(d0, "/p", "").unwrap();
    let tx = h.tx_start(d0);
    assert_eq!(h.raw(d0, XS_READ, tx, &z("/p/ghost")), Err(Errno::ENOENT));
    h.write(other, "/p/ghost", "boo").unwrap();
    assert_eq!(h.tx_end(d0, tx, true), Err(Errno::EAGAIN));
}

#[test]
fn transactions_on_separate_nodes_both_commit() {
    let mut h = H::new();
    let a = h.dom0();
    let b = h.dom0();
    h.write(a, "/x", "").unwrap();
    h.write(a, "/y", "").unwrap();
    let ta = h.tx_start(a);
    let tb = h.tx_start(b);
    h.raw(a, XS_WRITE, ta, b"/x/k\0a").unwrap();
    h.raw(b, XS_WRITE, tb, b"/y/k\0b").unwrap();
    h.tx_end(a, ta, true).unwrap();
    h.tx_end(b, tb, true).unwrap();
    assert_eq!(h.read(a, "/x/k").unwrap(), "a");
    assert_eq!(h.read(a, "/y/k").unwrap(), "b");
}

#[test]
fn an_aborted_transaction_leaves_no_trace() {
    let mut h = H::new();
    let d0 = h.dom0();
    h.watch(d0, "/ab", "w").unwrap();
    h.events(d0);
    let tx = h.tx_start(d0);
    h.raw(d0, XS_WRITE, tx, b"/ab/x\0v").unwrap();
    h.tx_end(d0, tx, false).unwrap();
    assert_eq!(h.read(d0, "/ab/x"), Err(Errno::ENOENT));
    assert_eq!(h.events(d0), ev(&[]));
    check_store(h.xs.store());
}

#[test]
fn transaction_misuse_is_refused() {
    let mut h = H::new();
    let d0 = h.dom0();
    let other = h.dom0();
    assert_eq!(h.raw(d0, XS_READ, 42, &z("/")), Err(Errno::ENOENT), "no such transaction");
    let tx = h.tx_start(d0);
    assert_eq!(h.raw(other, XS_READ, tx, &z("/")), Err(Errno::ENOENT), "transactions are per connection");
    assert_eq!(h.raw(d0, XS_TRANSACTION_START, tx, b"\0"), Err(Errno::EBUSY));
    assert_eq!(h.raw(d0, XS_TRANSACTION_END, tx, b"X\0"), Err(Errno::EINVAL));
    assert_eq!(h.raw(d0, XS_TRANSACTION_END, 0, b"T\0"), Err(Errno::ENOENT));
    assert_eq!(h.xs.connection(d0).unwrap().transaction_count(), 1, "a bad end leaves it open");
    h.tx_end(d0, tx, false).unwrap();
}

#[test]
fn a_domus_transaction_is_checked_like_its_plain_requests() {
    let mut h = H::new();
    let d1 = h.domu(1);
    let tx = h.tx_start(d1);
    assert_eq!(h.raw(d1, XS_WRITE, tx, b"/local/domain/0/x\0v"), Err(Errno::EACCES));
    assert_eq!(h.raw(d1, XS_READ, tx, &z("/")), Err(Errno::EACCES));
    h.raw(d1, XS_WRITE, tx, b"data/x\0v").unwrap();
    assert_eq!(h.raw(d1, XS_GET_PERMS, tx, &z("data/x")).unwrap(), b"n1\0");
    h.raw(d1, XS_SET_PERMS, tx, b"data/x\0n1\0r0\0").unwrap();
    assert_eq!(h.raw(d1, XS_SET_PERMS, tx, b"data/x\0n2\0"), Err(Errno::EPERM));
    h.tx_end(d1, tx, true).unwrap();
    assert_eq!(h.perms(d1, "data/x").unwrap(), "n1,r0");
    check_store(h.xs.store());
}

#[test]
fn open_transactions_per_connection_are_capped() {
    let mut h = H::with(Quotas { max_transactions: 2, ..Quotas::DEFAULT });
    let d1 = h.domu(1);
    let a = h.tx_start(d1);
    let b = h.tx_start(d1);
    assert_ne!(a, b);
    assert_eq!(h.call(d1, XS_TRANSACTION_START, b"\0"), Err(Errno::ENOSPC));
    h.tx_end(d1, a, false).unwrap();
    let c = h.tx_start(d1);
    assert!(c != b && c != 0);
}

#[test]
fn a_transaction_touching_too_many_nodes_is_enospc() {
    let mut h = H::with(Quotas { max_transaction_nodes: 8, ..Quotas::DEFAULT });
    let d0 = h.dom0();
    for i in 0..12 {
        h.write(d0, &format!("/many/n{i}"), "").unwrap();
    }
    let tx = h.tx_start(d0);
    let mut refused = false;
    for i in 0..12 {
        match h.raw(d0, XS_READ, tx, &z(&format!("/many/n{i}"))) {
            Ok(_) => assert!(!refused),
            Err(e) => {
                assert_eq!(e, Errno::ENOSPC);
                refused = true;
            }
        }
    }
    assert!(refused);
    assert_eq!(h.raw(d0, XS_WRITE, tx, b"/many/new\0"), Err(Errno::ENOSPC));
    h.tx_end(d0, tx, true).unwrap();
    assert_eq!(h.read(d0, "/many/new"), Err(Errno::ENOENT), "the refused write did nothing");
}

#[test]
fn the_node_quota_holds_at_commit() {
    let mut h = H::with(Quotas { max_nodes: 4, ..Quotas::DEFAULT });
    let d1 = h.domu(1);
    h.write(d1, "a", "").unwrap();
    h.write(d1, "b", "").unwrap();
    assert_eq!(h.xs.store().owned_by(1), 3, "the home, a and b");
    // Each fits alone, on nodes the other does not touch.
    let ta = h.tx_start(d1);
    let tb = h.tx_start(d1);
    h.raw(d1, XS_WRITE, ta, b"a/x\0").unwrap();
    h.raw(d1, XS_WRITE, tb, b"b/x\0").unwrap();
    assert_eq!(h.raw(d1, XS_WRITE, tb, b"b/y\0"), Err(Errno::ENOSPC), "checked as it goes");
    h.tx_end(d1, ta, true).unwrap();
    assert_eq!(h.tx_end(d1, tb, true), Err(Errno::ENOSPC), "and again at the commit");
    assert_eq!(h.xs.store().owned_by(1), 4);
    assert_eq!(h.read(d1, "b/x"), Err(Errno::ENOENT));
    check_store(h.xs.store());
}

#[test]
fn a_transaction_holding_too_many_bytes_is_enospc() {
    let mut h = H::with(Quotas { max_transaction_bytes: 10_000, ..Quotas::DEFAULT });
    let d1 = h.domu(1);
    let tx = h.tx_start(d1);
    let mut value = z("data/v");
    value.resize(4000, b'v');
    // Rewriting one node does not add up.
    for _ in 0..10 {
        h.raw(d1, XS_WRITE, tx, &value).unwrap();
    }
    value[5] = b'w';
    h.raw(d1, XS_WRITE, tx, &value).unwrap();
    value[5] = b'x';
    h.raw(d1, XS_WRITE, tx, &value).unwrap();
    assert_eq!(h.raw(d1, XS_READ, tx, &z("data/v")), Err(Errno::ENOSPC), "over: nothing more");
    h.tx_end(d1, tx, false).unwrap();
}

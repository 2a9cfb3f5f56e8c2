//! The node operations (xenstore.txt "Node operations"), permissions,
//! relative names, domain entries and the listing.

use super::*;

#[test]
fn write_then_read_round_trips_and_creates_ancestors() {
    let mut h = H::new();
    let d0 = h.dom0();
    h.write(d0, "/a/b/c", "hello").unwrap();
    assert_eq!(h.read(d0, "/a/b/c").unwrap(), "hello");
    assert_eq!(h.read(d0, "/a/b").unwrap(), "", "ancestors are created empty");
    assert_eq!(h.dir(d0, "/a").unwrap(), ["b"]);
    // The value is everything after the path's nul, nuls included.
    let mut p = z("/bin");
    p.extend_from_slice(b"x\0y");
    h.call(d0, XS_WRITE, &p).unwrap();
    assert_eq!(h.call(d0, XS_READ, &z("/bin")).unwrap(), b"x\0y");
    h.write(d0, "/a/b/c", "").unwrap();
    assert_eq!(h.read(d0, "/a/b/c").unwrap(), "");
    check_store(h.xs.store());
}

#[test]
fn read_of_a_missing_node_is_enoent() {
    let mut h = H::new();
    let d0 = h.dom0();
    assert_eq!(h.read(d0, "/nope"), Err(Errno::ENOENT));
    assert_eq!(h.read(d0, "/no/pe"), Err(Errno::ENOENT));
    assert_eq!(h.dir(d0, "/nope"), Err(Errno::ENOENT));
    assert_eq!(h.perms(d0, "/nope"), Err(Errno::ENOENT));
}

#[test]
fn mkdir_creates_an_empty_node_and_tolerates_an_existing_one() {
    let mut h = H::new();
    let d0 = h.dom0();
    assert_eq!(h.call(d0, XS_MKDIR, &z("/m/n")).unwrap(), b"OK\0");
    assert_eq!(h.read(d0, "/m/n").unwrap(), "");
    h.write(d0, "/m/n", "v").unwrap();
    assert_eq!(h.call(d0, XS_MKDIR, &z("/m/n")).unwrap(), b"OK\0");
    assert_eq!(h.read(d0, "/m/n").unwrap(), "v", "mkdir leaves an existing node alone");
}

#[test]
fn directory_lists_children_nul_terminated() {
    let mut h = H::new();
    let d0 = h.dom0();
    h.write(d0, "/d/y", "").unwrap();
    h.write(d0, "/d/x", "").unwrap();
    h.write(d0, "/d/x/deep", "").unwrap();
    assert_eq!(h.call(d0, XS_DIRECTORY, &z("/d")).unwrap(), b"x\0y\0");
    assert_eq!(h.call(d0, XS_DIRECTORY, &z("/d/y")).unwrap(), b"", "no children: empty payload");
}

#[test]
fn a_directory_too_big_for_a_message_is_e2big_and_pages_with_directory_part() {
    let mut h = H::new();
    let d0 = h.dom0();
    let mut want = Vec::new();
    for i in 0..200 {
        let name = format!("child-{i:03}-abcdefghijklmnopqrstuvwxyz");
        h.write(d0, &format!("/big/{name}"), "").unwrap();
        want.push(name);
    }
    want.sort();
    assert_eq!(h.call(d0, XS_DIRECTORY, &z("/big")), Err(Errno::E2BIG));
    let generation = h.xs.store().get("/big").unwrap().generation().to_string();
    let (mut got, mut offset, mut pages) = (Vec::new(), 0usize, 0);
    loop {
        let r = h.call(d0, XS_DIRECTORY_PART, &zz(&["/big", &offset.to_string()])).unwrap();
        pages += 1;
        let gen_end = r.iter().position(|&b| b == 0).unwrap();
        assert_eq!(std::str::from_utf8(&r[..gen_end]).unwrap(), generation);
        let body = &r[gen_end + 1..];
        if body == b"\0" {
            break;
        }
        let (list, last) = match body.strip_suffix(b"\0\0") {
            Some(l) => (l, true),
            None => (body.strip_suffix(b"\0").unwrap(), false),
        };
        for name in list.split(|&b| b == 0) {
            got.push(String::from_utf8(name.to_vec()).unwrap());
            offset += name.len() + 1;
        }
        if last {
            break;
        }
    }
    assert_eq!(got, want);
    assert!(pages >= 2, "it took {pages} pages");
    // An offset past the end is just the end marker.
    let r = h.call(d0, XS_DIRECTORY_PART, &zz(&["/big", "999999"])).unwrap();
    assert_eq!(r, [generation.as_bytes(), b"\0\0"].concat());
    assert_eq!(h.call(d0, XS_DIRECTORY_PART, &zz(&["/big", "x"])), Err(Errno::EINVAL));
}

#[test]
fn rm_removes_the_subtree_and_tolerates_a_missing_leaf() {
    let mut h = H::new();
    let d0 = h.dom0();
    h.write(d0, "/r/a/b", "1").unwrap();
    h.write(d0, "/r/a/c", "2").unwrap();
    h.write(d0, "/r/keep", "3").unwrap();
    let before = h.xs.store().len();
    assert_eq!(h.call(d0, XS_RM, &z("/r/a")).unwrap(), b"OK\0");
    assert_eq!(h.xs.store().len(), before - 3);
    assert_eq!(h.read(d0, "/r/a/b"), Err(Errno::ENOENT));
    assert_eq!(h.dir(d0, "/r").unwrap(), ["keep"]);
    assert_eq!(h.call(d0, XS_RM, &z("/r/a")).unwrap(), b"OK\0", "gone, but its parent exists: fine");
    assert_eq!(h.call(d0, XS_RM, &z("/r/a/b")), Err(Errno::ENOENT), "no parent either");
    assert_eq!(h.call(d0, XS_RM, &z("/")), Err(Errno::EINVAL));
    check_store(h.xs.store());
}

#[test]
fn permissions_read_back_in_wire_form() {
    let mut h = H::new();
    let d0 = h.dom0();
    h.write(d0, "/p", "").unwrap();
    assert_eq!(h.call(d0, XS_GET_PERMS, &z("/p")).unwrap(), b"n0\0", "inherited from /");
    h.set_perms(d0, "/p", &["r3", "w4", "b5", "n6"]).unwrap();
    assert_eq!(h.call(d0, XS_GET_PERMS, &z("/p")).unwrap(), b"r3\0w4\0b5\0n6\0");
    assert_eq!(h.xs.store().owned_by(3), 1, "ownership moved to 3");
    for bad in [&b"/p\0"[..], b"/p\0x1\0", b"/p\0r\0", b"/p\0r1", b"/p"] {
        assert_eq!(h.call(d0, XS_SET_PERMS, bad), Err(Errno::EINVAL), "{bad:?}");
    }
}

#[test]
fn get_domain_path_is_the_home() {
    let mut h = H::new();
    let d0 = h.dom0();
    assert_eq!(h.call(d0, XS_GET_DOMAIN_PATH, &z("7")).unwrap(), b"/local/domain/7\0");
    assert_eq!(h.call(d0, XS_GET_DOMAIN_PATH, &z("x")), Err(Errno::EINVAL));
    assert_eq!(h.call(d0, XS_GET_DOMAIN_PATH, b"7"), Err(Errno::EINVAL), "not nul-terminated");
}

#[test]
fn bad_requests_get_einval_and_the_connection_carries_on() {
    let mut h = H::new();
    let d0 = h.dom0();
    assert_eq!(h.call(d0, 999, b""), Err(Errno::EINVAL), "unknown type");
    assert_eq!(h.call(d0, XS_WATCH_EVENT, &zz(&["/a", "t"])), Err(Errno::EINVAL), "server-only type");
    assert_eq!(h.call(d0, XS_ERROR, b"ENOENT\0"), Err(Errno::EINVAL));
    assert_eq!(h.call(d0, XS_READ, b"/a"), Err(Errno::EINVAL), "no nul");
    assert_eq!(h.call(d0, XS_READ, b"/a\0/b\0"), Err(Errno::EINVAL), "two arguments");
    assert_eq!(h.call(d0, XS_WRITE, b"/a"), Err(Errno::EINVAL), "no nul after the path");
    assert_eq!(h.call(d0, XS_READ, &z("/a//b")), Err(Errno::EINVAL));
    assert_eq!(h.call(d0, XS_READ, &z("/a/")), Err(Errno::EINVAL));
    assert_eq!(h.call(d0, XS_READ, &z("/a b")), Err(Errno::EINVAL));
    assert_eq!(h.call(d0, XS_READ, &z("@releaseDomain")), Err(Errno::EINVAL));
    assert_eq!(h.call(d0, XS_CONTROL, &z("print")), Err(Errno::ENOSYS));
    h.write(d0, "/still", "ok").unwrap();
    assert_eq!(h.read(d0, "/still").unwrap(), "ok");
}

#[test]
fn relative_names_resolve_against_the_callers_home() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d1 = h.domu(1);
    h.write(d1, "data/x", "1").unwrap();
    assert_eq!(h.read(d0, "/local/domain/1/data/x").unwrap(), "1");
    assert_eq!(h.read(d1, "/local/domain/1/data/x").unwrap(), "1");
    assert_eq!(h.read(d1, "name").unwrap(), "d1");
    h.write(d0, "mine", "0").unwrap();
    assert_eq!(h.read(d0, "/local/domain/0/mine").unwrap(), "0");
    assert_eq!(h.dir(d1, "data").unwrap(), ["x"]);
}

#[test]
fn a_domu_cannot_reach_outside_what_its_permissions_allow() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d1 = h.domu(1);
    let _d2 = h.domu(2);
    h.write(d0, "/secret", "s").unwrap();
    assert_eq!(h.read(d1, "/secret"), Err(Errno::EACCES));
    assert_eq!(h.read(d1, "/local/domain/2/name"), Err(Errno::EACCES));
    assert_eq!(h.dir(d1, "/"), Err(Errno::EACCES));
    assert_eq!(h.dir(d1, "/local/domain"), Err(Errno::EACCES));
    assert_eq!(h.perms(d1, "/secret"), Err(Errno::EACCES));
    assert_eq!(h.write(d1, "/secret", "x"), Err(Errno::EACCES));
    assert_eq!(h.write(d1, "/new", "x"), Err(Errno::EACCES), "creating needs write on the parent");
    assert_eq!(h.write(d1, "/local/domain/2/data/x", "x"), Err(Errno::EACCES));
    assert_eq!(h.call(d1, XS_MKDIR, &z("/newdir")), Err(Errno::EACCES));
    assert_eq!(h.call(d1, XS_RM, &z("/secret")), Err(Errno::EACCES));
    assert_eq!(h.call(d1, XS_RM, &z("/local/domain/2")), Err(Errno::EACCES));
    assert_eq!(h.set_perms(d1, "/secret", &["b1"]), Err(Errno::EACCES));
    // Where it may not look, a missing node is EACCES, not ENOENT.
    assert_eq!(h.read(d1, "/local/domain/2/missing"), Err(Errno::EACCES));
    assert_eq!(h.read(d1, "missing"), Err(Errno::ENOENT));
    assert_eq!(h.read(d0, "/secret").unwrap(), "s", "nothing changed");
    assert!(h.xs.store().get("/new").is_none());
    check_store(h.xs.store());
}

#[test]
fn a_domu_owns_what_it_creates_and_may_share_but_not_give_away() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d1 = h.domu(1);
    let d2 = h.domu(2);
    h.write(d1, "data/x", "1").unwrap();
    assert_eq!(h.perms(d1, "data/x").unwrap(), "n1");
    assert_eq!(h.perms(d0, "/local/domain/1/data").unwrap(), "n1", "intermediate nodes too");
    h.set_perms(d1, "data/x", &["n1", "r2"]).unwrap();
    assert_eq!(h.read(d2, "/local/domain/1/data/x").unwrap(), "1");
    assert_eq!(h.write(d2, "/local/domain/1/data/x", "2"), Err(Errno::EACCES));
    assert_eq!(h.set_perms(d1, "data/x", &["n2"]), Err(Errno::EPERM), "cannot give it away");
    assert_eq!(h.set_perms(d2, "/local/domain/1/data/x", &["n2"]), Err(Errno::EACCES));
    h.set_perms(d1, "data/x", &["n1", "w2"]).unwrap();
    h.write(d2, "/local/domain/1/data/x", "2").unwrap();
    assert_eq!(h.read(d2, "/local/domain/1/data/x"), Err(Errno::EACCES), "w is not r");
    assert_eq!(h.perms(d1, "data/x").unwrap(), "n1,w2", "a write keeps the permissions");
    // Dom0 creating in a domain's home leaves the domain the owner.
    h.write(d0, "/local/domain/1/device/vif/0/state", "1").unwrap();
    assert_eq!(h.perms(d0, "/local/domain/1/device/vif/0/state").unwrap(), "n1");
    h.write(d1, "device/vif/0/state", "4").unwrap();
    // The toolstack's entries are read-only to the domain.
    assert_eq!(h.read(d1, "domid").unwrap(), "1");
    assert_eq!(h.write(d1, "name", "evil"), Err(Errno::EACCES));
    assert_eq!(h.call(d1, XS_RM, &z("name")), Err(Errno::EACCES));
    // But its home is its own.
    assert_eq!(h.call(d1, XS_RM, &z("device")).unwrap(), b"OK\0");
}

#[test]
fn a_permission_entry_overrides_the_default_for_its_domain() {
    let mut h = H::new();
    let d0 = h.dom0();
    let d1 = h.domu(1);
    let d2 = h.domu(2);
    let d3 = h.domu(3);
    h.write(d0, "/shared", "v").unwrap();
    h.set_perms(d0, "/shared", &["r0", "n2", "b3"]).unwrap();
    assert_eq!(h.read(d1, "/shared").unwrap(), "v", "the default, r");
    assert_eq!(h.read(d2, "/shared"), Err(Errno::EACCES));
    assert_eq!(h.write(d1, "/shared", "x"), Err(Errno::EACCES));
    h.write(d3, "/shared", "3").unwrap();
    h.write(d3, "/shared/sub", "").unwrap();
    assert_eq!(h.perms(d0, "/shared/sub").unwrap(), "r3,n2,b3", "inherited, owned by its creator");
}

#[test]
fn domain_entries_are_written_and_removed() {
    let mut h = H::new();
    let d0 = h.dom0();
    create_domain_entries(&mut h.xs, 5, "web").unwrap();
    assert_eq!(h.read(d0, "/local/domain/5/name").unwrap(), "web");
    assert_eq!(h.read(d0, "/local/domain/5/domid").unwrap(), "5");
    assert_eq!(h.perms(d0, "/local/domain/5").unwrap(), "n5");
    assert_eq!(h.perms(d0, "/local/domain/5/name").unwrap(), "n0,r5");
    h.write(d0, "/local/domain/5/leftover", "x").unwrap();
    create_domain_entries(&mut h.xs, 5, "db").unwrap();
    assert_eq!(h.read(d0, "/local/domain/5/leftover"), Err(Errno::ENOENT), "a new domain starts clean");
    assert_eq!(h.read(d0, "/local/domain/5/name").unwrap(), "db");
    h.watch(d0, "/local/domain/5", "w").unwrap();
    remove_domain_entries(&mut h.xs, 5).unwrap();
    assert_eq!(h.read(d0, "/local/domain/5"), Err(Errno::ENOENT));
    assert_eq!(h.events(d0), ev(&[("/local/domain/5", "w"), ("/local/domain/5", "w")]));
    remove_domain_entries(&mut h.xs, 5).unwrap();
    assert_eq!(h.xs.store().owned_by(5), 0);
    check_store(h.xs.store());
}

#[test]
fn block_device_entries_let_each_end_read_the_other() {
    let mut h = H::new();
    create_domain_entries(&mut h.xs, 0, "Domain-0").unwrap();
    create_domain_entries(&mut h.xs, 3, "web").unwrap();
    create_domain_entries(&mut h.xs, 4, "db").unwrap();
    let paths = create_vbd_entries(&mut h.xs, 3, XVDA, 0, "disk0", false).unwrap();
    assert_eq!(paths.frontend, "/local/domain/3/device/vbd/51712");
    assert_eq!(paths.backend, "/local/domain/0/backend/vbd/3/51712");
    let xs = &mut h.xs;
    // The frontend reads the backend's and writes its own.
    assert_eq!(xs.read(3, "device/vbd/51712/backend").unwrap(), paths.backend.as_bytes());
    assert_eq!(xs.read(3, &format!("{}/params", paths.backend)).unwrap(), b"disk0");
    assert_eq!(xs.read(3, &format!("{}/mode", paths.backend)).unwrap(), b"w");
    xs.write(3, "device/vbd/51712/ring-ref", b"8").unwrap();
    xs.write(3, "device/vbd/51712/state", b"3").unwrap();
    assert_eq!(xs.write(3, &format!("{}/state", paths.backend), b"4"), Err(Errno::EACCES), "not the frontend's");
    // The backend reads what the frontend wrote, and no one else can.
    assert_eq!(xs.read(0, "/local/domain/3/device/vbd/51712/ring-ref").unwrap(), b"8");
    assert_eq!(xs.get_perms(0, "/local/domain/3/device/vbd/51712/ring-ref").unwrap().to_string(), "n3,r0");
    assert_eq!(xs.read(4, "/local/domain/3/device/vbd/51712/ring-ref"), Err(Errno::EACCES));
    assert_eq!(xs.read(4, &format!("{}/params", paths.backend)), Err(Errno::EACCES));
    // A new device replaces the old; removal takes the backend's directory.
    xs.write(0, &format!("{}/sectors", paths.backend), b"8").unwrap();
    create_vbd_entries(xs, 3, XVDA, 0, "disk1", true).unwrap();
    assert_eq!(xs.read(0, &format!("{}/sectors", paths.backend)), Err(Errno::ENOENT));
    assert_eq!(xs.read(3, &format!("{}/mode", paths.backend)).unwrap(), b"r");
    remove_vbd_entries(xs, 3, 0).unwrap();
    assert_eq!(xs.read(0, "/local/domain/0/backend/vbd/3"), Err(Errno::ENOENT));
    remove_vbd_entries(xs, 3, 0).unwrap();
    check_store(h.xs.store());
}

#[test]
fn the_rust_api_checks_permissions_like_the_wire() {
    let mut h = H::new();
    create_domain_entries(&mut h.xs, 1, "one").unwrap();
    let xs = &mut h.xs;
    xs.write(1, "data/a", b"1").unwrap();
    assert_eq!(xs.read(1, "data/a").unwrap(), b"1");
    assert_eq!(xs.read(1, "/local/domain/0"), Err(Errno::EACCES), "missing, under n0 /local/domain");
    assert_eq!(xs.write(1, "/x", b""), Err(Errno::EACCES));
    assert_eq!(xs.directory(0, "/local/domain/1").unwrap(), ["data", "domid", "name"]);
    assert_eq!(xs.get_perms(1, "data").unwrap().to_string(), "n1");
    xs.mkdir(1, "data/b").unwrap();
    xs.set_perms(1, "data/b", Perms::parse(b"n1\0r0\0").unwrap()).unwrap();
    xs.rm(1, "data").unwrap();
    assert_eq!(xs.directory(1, ""), Err(Errno::EINVAL));
    assert_eq!(xs.read(1, "data"), Err(Errno::ENOENT));
}

#[test]
fn the_listing_is_an_indented_tree() {
    let mut h = H::new();
    create_domain_entries(&mut h.xs, 0, "Domain-0").unwrap();
    create_domain_entries(&mut h.xs, 1, "web").unwrap();
    h.xs.write(0, "/local/domain/1/data/note", b"a\"b\\c\n").unwrap();
    let out = list(h.xs.store(), "/", false).unwrap();
    let want = "local = \"\"\n \
                domain = \"\"\n  \
                0 = \"\"\n   \
                domid = \"0\"\n   \
                name = \"Domain-0\"\n  \
                1 = \"\"\n   \
                data = \"\"\n    \
                note = \"a\"b\\\\c\\n\"\n   \
                domid = \"1\"\n   \
                name = \"web\"\n";
    assert_eq!(out, want);
    let out = list(h.xs.store(), "/local/domain/1", true).unwrap();
    assert!(out.starts_with("data = \"\"  (n1)\n note = "), "{out}");
    assert!(out.ends_with("name = \"web\"  (n0,r1)\n"), "{out}");
    assert_eq!(list(h.xs.store(), "/nope", false), Err(Errno::ENOENT));
}

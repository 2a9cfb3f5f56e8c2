//! Node names: resolving a client's name against its home and checking it
//! (xenstored's `canonicalize` and `is_valid_nodename`).
//!
//! A name is absolute (`/local/domain/3/name`), relative to the client's
//! home `/local/domain/<domid>` (`name`), or, where the operation allows,
//! special (`@releaseDomain`). A valid name has only the characters
//! `A-Z a-z 0-9 - / _ @`, no `//`, no trailing `/` (but `/` itself), at most
//! [`XENSTORE_REL_PATH_MAX`] bytes after a `/local/domain/<domid>/` prefix
//! and at most [`XENSTORE_ABS_PATH_MAX`] bytes in all.

use alloc::format;
use alloc::string::String;

use abi::errno::Errno;
use abi::xenstore::{XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX};

use crate::builder::DomId;

/// Where every domain's home lies.
pub const LOCAL_DOMAIN: &str = "/local/domain";

/// The special node whose watches fire when a domain is introduced.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";

/// The special node whose watches fire when a domain is released.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// `/local/domain/<domid>`: the home of `domid`, which its relative names
/// are resolved against (`XS_GET_DOMAIN_PATH`'s answer).
pub fn domain_path(domid: DomId) -> String {
    format!("{LOCAL_DOMAIN}/{domid}")
}

/// A name as a client gave it, resolved to an absolute or special one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The absolute (`/...`) or special (`@...`) name.
    pub path: String,
    /// Bytes to strip from a name under `path` to give it back in the
    /// client's relative form (the home and its `/`); 0 if `path` was given
    /// absolute.
    pub relative: usize,
}

impl Resolved {
    /// `name` (at or under this one) as the client would have written it.
    pub fn client_form<'a>(&self, name: &'a str) -> &'a str {
        name.get(self.relative..).unwrap_or(name)
    }
}

/// Whether `b` may appear in a node name.
const fn valid_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@')
}

/// Resolves `name`, sent by `domid`, and checks the result. `special` allows
/// `@` names. Errors are `EINVAL`, as xenstored's.
pub(crate) fn resolve(domid: DomId, name: &[u8], special: bool) -> Result<Resolved, Errno> {
    // Everything valid is ASCII, so a check of the bytes makes a `str`.
    if name.is_empty() || !name.iter().all(|&b| valid_char(b)) {
        return Err(Errno::EINVAL);
    }
    let name = core::str::from_utf8(name).map_err(|_| Errno::EINVAL)?;
    let resolved = match name.as_bytes().first() {
        Some(b'/') => Resolved { path: String::from(name), relative: 0 },
        Some(b'@') if special => Resolved { path: String::from(name), relative: 0 },
        Some(b'@') => return Err(Errno::EINVAL),
        _ => {
            let home = domain_path(domid);
            let relative = home.len() + 1;
            Resolved { path: format!("{home}/{name}"), relative }
        }
    };
    check(&resolved.path)?;
    Ok(resolved)
}

/// Checks an absolute or special name (already of valid characters).
fn check(path: &str) -> Result<(), Errno> {
    if path != "/" && path.ends_with('/') {
        return Err(Errno::EINVAL);
    }
    if path.contains("//") {
        return Err(Errno::EINVAL);
    }
    let local = local_prefix_len(path);
    let rel_len = path.len().saturating_sub(local);
    if rel_len > XENSTORE_REL_PATH_MAX as usize || path.len() > XENSTORE_ABS_PATH_MAX as usize {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Length of a `/local/domain/<up to 5 digits>/` prefix of `path`, or 0.
fn local_prefix_len(path: &str) -> usize {
    let Some(rest) = path.strip_prefix("/local/domain/") else {
        return 0;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 5 || rest.as_bytes().get(digits) != Some(&b'/') {
        return 0;
    }
    path.len() - rest.len() + digits + 1
}

/// The parent of absolute `path` (`None` for `/`).
pub(crate) fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => path.get(..i),
        None => None,
    }
}

/// The last component of absolute `path` (empty for `/`).
pub(crate) fn base(path: &str) -> &str {
    path.rfind('/').and_then(|i| path.get(i + 1..)).unwrap_or("")
}

/// `parent/name`.
pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether `path` is `ancestor` or lies under it (xenstored's `is_child`,
/// except that `/` covers no special name).
pub(crate) fn is_at_or_under(path: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return path.starts_with('/');
    }
    match path.strip_prefix(ancestor) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Parses a domain id sent as a decimal string (`"3"`).
pub(crate) fn parse_domid(s: &[u8]) -> Result<DomId, Errno> {
    parse_decimal(s).and_then(|v| DomId::try_from(v).ok()).ok_or(Errno::EINVAL)
}

/// A decimal number of at most 20 digits and no sign, or `None`.
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let digit = char::from(b).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_resolve_against_the_home() {
        let r = resolve(5, b"device/vif", false).unwrap();
        assert_eq!(r.path, "/local/domain/5/device/vif");
        assert_eq!(r.client_form("/local/domain/5/device/vif/0"), "device/vif/0");
        let a = resolve(5, b"/vm", false).unwrap();
        assert_eq!((a.path.as_str(), a.relative), ("/vm", 0));
        assert_eq!(resolve(0, b"/", false).unwrap().path, "/");
    }

    #[test]
    fn bad_names_are_einval() {
        for bad in [&b""[..], b"a//b", b"/a/", b"a/", b"/a b", b"/a\0", b"/\xff", b"/a.b", b"@x"] {
            assert_eq!(resolve(1, bad, false), Err(Errno::EINVAL), "{bad:?}");
        }
        assert_eq!(resolve(1, b"@releaseDomain", true).unwrap().path, "@releaseDomain");
    }

    #[test]
    fn path_length_limits_count_from_the_home() {
        let rel = "a".repeat(XENSTORE_REL_PATH_MAX as usize);
        assert!(resolve(1, rel.as_bytes(), false).is_ok());
        let long = "a".repeat(XENSTORE_REL_PATH_MAX as usize + 1);
        assert_eq!(resolve(1, long.as_bytes(), false), Err(Errno::EINVAL));
        let abs = format!("/{rel}");
        assert_eq!(resolve(1, abs.as_bytes(), false), Err(Errno::EINVAL), "outside a home the whole name counts");
    }

    #[test]
    fn tree_helpers() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(base("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_at_or_under("/a/b", "/a"));
        assert!(is_at_or_under("/a", "/a"));
        assert!(!is_at_or_under("/ab", "/a"));
        assert!(is_at_or_under("/x", "/"));
        assert!(!is_at_or_under("@releaseDomain", "/"));
        assert_eq!(parse_domid(b"65535"), Ok(65535));
        assert_eq!(parse_domid(b"65536"), Err(Errno::EINVAL));
        assert_eq!(parse_domid(b"-1"), Err(Errno::EINVAL));
        assert_eq!(parse_decimal(b"99999999999999999999"), None);
    }
}

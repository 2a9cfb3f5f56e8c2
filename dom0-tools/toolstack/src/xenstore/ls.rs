//! A `xenstore-ls`-style listing of part of the store, for dom0's shell.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use abi::errno::Errno;

use super::path::{base, join};
use super::store::Store;

/// Lists the tree under absolute `path` as `xenstore-ls` does: each node
/// below it on its own line, `name = "value"`, indented one space per level
/// (the children of `path` not at all), children in byte order; with
/// `perms`, followed by `  (n0,r1)`. Values are escaped as `xenstore-ls`
/// escapes them (`\\`, `\t`, `\n`, `\r`, `\ooo` below 8, `\xNN` for other
/// bytes outside printable ASCII). A missing `path` is `ENOENT`.
pub fn list(store: &Store, path: &str, perms: bool) -> Result<String, Errno> {
    let root = store.get(path).ok_or(Errno::ENOENT)?;
    let mut out = String::new();
    // Depth-first with an explicit stack: the tree may be deep.
    let mut stack: Vec<(String, usize)> = root.children().rev().map(|c| (join(path, c), 0)).collect();
    while let Some((p, depth)) = stack.pop() {
        let Some(node) = store.get(&p) else { continue };
        for _ in 0..depth {
            out.push(' ');
        }
        out.push_str(base(&p));
        out.push_str(" = \"");
        escape(node.value(), &mut out);
        out.push('"');
        if perms {
            let _ = write!(out, "  ({})", node.perms());
        }
        out.push('\n');
        stack.extend(node.children().rev().map(|c| (join(&p, c), depth + 1)));
    }
    Ok(out)
}

/// Appends `value` to `out` escaped as `xenstore-ls`'s `sanitise_value`.
fn escape(value: &[u8], out: &mut String) {
    for &b in value {
        match b {
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(char::from(b)),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            0..=7 => {
                let _ = write!(out, "\\{b:03o}");
            }
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_xenstore_ls() {
        let mut s = String::new();
        escape(b"a b\\\t\n\r\x00\x07\x08\x7f\xff~", &mut s);
        assert_eq!(s, "a b\\\\\\t\\n\\r\\000\\007\\x08\\x7f\\xff~");
    }
}

//! The xenstore wire format: a 16-byte `xsd_sockmsg` header, then a
//! payload of at most [`XENSTORE_PAYLOAD_MAX`] bytes, usually nul-terminated
//! strings.
//!
//! The header's fields are in the byte order of the machine, since both
//! ends share it.

use alloc::vec::Vec;

use abi::errno::Errno;
use abi::xenstore::{XsdSockmsg, XENSTORE_PAYLOAD_MAX, XSD_ERRORS};

/// Bytes in a message header.
pub const HEADER_LEN: usize = 16;

/// Reads a header from the first [`HEADER_LEN`] bytes of `bytes`.
pub fn decode_header(bytes: &[u8]) -> Option<XsdSockmsg> {
    let word = |i: usize| bytes.get(i..i + 4).and_then(|w| w.try_into().ok()).map(u32::from_ne_bytes);
    Some(XsdSockmsg { type_: word(0)?, req_id: word(4)?, tx_id: word(8)?, len: word(12)? })
}

/// A whole message: `type_`, `req_id`, `tx_id` and `payload` (its length
/// is filled in). Used for replies and events, and by clients.
pub fn encode(type_: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    for word in [type_, req_id, tx_id, len] {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// The `XS_ERROR` payload for `e`: its name and a nul, or `EINVAL`'s if it
/// is not in [`XSD_ERRORS`] (as xenstored's `send_error`).
pub fn error_payload(e: Errno) -> Vec<u8> {
    let e = if XSD_ERRORS.contains(&e) { e } else { Errno::EINVAL };
    let mut out = Vec::from(e.name().as_bytes());
    out.push(0);
    out
}

/// The errno an `XS_ERROR` payload names, if it names one of [`XSD_ERRORS`].
pub fn parse_error(payload: &[u8]) -> Option<Errno> {
    let name = payload.strip_suffix(&[0]).unwrap_or(payload);
    XSD_ERRORS.iter().copied().find(|e| e.name().as_bytes() == name)
}

/// The single nul-terminated string a payload must be (xenstored's
/// `onearg`), without its nul.
pub(crate) fn one_arg(payload: &[u8]) -> Result<&[u8], Errno> {
    let body = payload.strip_suffix(&[0]).ok_or(Errno::EINVAL)?;
    if body.contains(&0) {
        return Err(Errno::EINVAL);
    }
    Ok(body)
}

/// A nul-terminated string and the bytes after its nul (`XS_WRITE`'s name
/// and value), without the nul.
pub(crate) fn first_arg(payload: &[u8]) -> Result<(&[u8], &[u8]), Errno> {
    let nul = payload.iter().position(|&b| b == 0).ok_or(Errno::EINVAL)?;
    Ok((payload.get(..nul).unwrap_or_default(), payload.get(nul + 1..).unwrap_or_default()))
}

/// Exactly `N` nul-terminated strings, without their nuls.
pub(crate) fn args<const N: usize>(payload: &[u8]) -> Result<[&[u8]; N], Errno> {
    let body = payload.strip_suffix(&[0]).ok_or(Errno::EINVAL)?;
    let mut out = [&[][..]; N];
    let mut parts = body.split(|&b| b == 0);
    for slot in &mut out {
        *slot = parts.next().ok_or(Errno::EINVAL)?;
    }
    if parts.next().is_some() {
        return Err(Errno::EINVAL);
    }
    Ok(out)
}

/// Splits client output into messages; for clients and tests.
#[derive(Clone, Debug, Default)]
pub struct MessageReader {
    /// Bytes not yet making a whole message.
    buf: Vec<u8>,
}

impl MessageReader {
    /// An empty reader.
    pub const fn new() -> MessageReader {
        MessageReader { buf: Vec::new() }
    }

    /// Adds `bytes` and returns the messages now whole, as header and
    /// payload. A header announcing more than [`XENSTORE_PAYLOAD_MAX`] is
    /// `Err(EIO)`, and the reader is emptied.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<(XsdSockmsg, Vec<u8>)>, Errno> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(hdr) = decode_header(&self.buf) {
            if hdr.len > XENSTORE_PAYLOAD_MAX {
                self.buf.clear();
                return Err(Errno::EIO);
            }
            let end = HEADER_LEN + hdr.len as usize;
            let Some(payload) = self.buf.get(HEADER_LEN..end) else { break };
            out.push((hdr, payload.to_vec()));
            self.buf.drain(..end);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = encode(2, 7, 3, b"/a\0");
        assert_eq!(m.len(), HEADER_LEN + 3);
        assert_eq!(decode_header(&m), Some(XsdSockmsg { type_: 2, req_id: 7, tx_id: 3, len: 3 }));
        assert_eq!(decode_header(&m[..15]), None);
        let mut r = MessageReader::new();
        let (a, b) = m.split_at(5);
        assert!(r.push(a).unwrap().is_empty());
        let got = r.push(b).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"/a\0");
    }

    #[test]
    fn error_names_are_xsd_errors() {
        assert_eq!(error_payload(Errno::ENOENT), b"ENOENT\0");
        assert_eq!(error_payload(Errno::ESRCH), b"EINVAL\0", "not in the list: EINVAL");
        assert_eq!(parse_error(b"EAGAIN\0"), Some(Errno::EAGAIN));
        assert_eq!(parse_error(b"EQUOTA\0"), None);
    }

    #[test]
    fn argument_splitting() {
        assert_eq!(one_arg(b"abc\0"), Ok(&b"abc"[..]));
        assert_eq!(one_arg(b"abc"), Err(Errno::EINVAL));
        assert_eq!(one_arg(b"a\0b\0"), Err(Errno::EINVAL));
        assert_eq!(args::<2>(b"a\0b\0"), Ok([&b"a"[..], b"b"]));
        assert_eq!(args::<2>(b"a\0"), Err(Errno::EINVAL));
        assert_eq!(args::<2>(b"a\0b\0c\0"), Err(Errno::EINVAL));
        assert_eq!(args::<2>(b"a\0b"), Err(Errno::EINVAL));
        assert_eq!(args::<1>(b"\0"), Ok([&b""[..]]));
        assert_eq!(first_arg(b"a\0b\0c"), Ok((&b"a"[..], &b"b\0c"[..])));
        assert_eq!(first_arg(b"a\0"), Ok((&b"a"[..], &b""[..])));
        assert_eq!(first_arg(b"a"), Err(Errno::EINVAL));
    }
}

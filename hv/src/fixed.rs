//! Fixed-capacity containers for code that runs before there is a heap.

use core::fmt;

/// A string of at most `N` bytes stored inline. Input that does not fit is
/// truncated at a character boundary and the truncation remembered.
#[derive(Clone, Copy)]
pub struct FixedStr<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> FixedStr<N> {
    /// The empty string.
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0, truncated: false }
    }

    /// Copies `bytes`, replacing invalid UTF-8 with `?` and truncating to `N`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut s = Self::new();
        for chunk in bytes.utf8_chunks() {
            s.push_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                s.push_str("?");
            }
        }
        s
    }

    /// Appends `text`, truncating at a character boundary if it does not fit.
    pub fn push_str(&mut self, text: &str) {
        let room = N - self.len;
        let mut take = text.len().min(room);
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        self.truncated |= take < text.len();
    }

    /// The contents.
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever copied in.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Whether some input was dropped because it did not fit.
    pub const fn truncated(&self) -> bool {
        self.truncated
    }
}

impl<const N: usize> Default for FixedStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A vector of at most `N` `Copy` items stored inline.
#[derive(Clone, Copy)]
pub struct FixedVec<T: Copy + Default, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy + Default, const N: usize> FixedVec<T, N> {
    /// The empty vector.
    pub fn new() -> Self {
        Self { items: [T::default(); N], len: 0 }
    }

    /// The empty vector, its slots holding `fill` (usable in a `static`).
    pub const fn filled_with(fill: T) -> Self {
        Self { items: [fill; N], len: 0 }
    }

    /// Appends `item`, or gives it back if the vector is full.
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.len == N {
            return Err(item);
        }
        self.items[self.len] = item;
        self.len += 1;
        Ok(())
    }

    /// The items.
    pub fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }

    /// The items, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.items[..self.len]
    }

    /// Removes the item at `index`, shifting the rest down.
    pub fn remove(&mut self, index: usize) -> T {
        let item = self.items[index];
        self.items.copy_within(index + 1..self.len, index);
        self.len -= 1;
        item
    }

    /// Inserts `item` at `index`, or gives it back if the vector is full.
    pub fn insert(&mut self, index: usize, item: T) -> Result<(), T> {
        if self.len == N {
            return Err(item);
        }
        self.items.copy_within(index..self.len, index + 1);
        self.items[index] = item;
        self.len += 1;
        Ok(())
    }

    /// Number of items.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no items.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T: Copy + Default, const N: usize> Default for FixedVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + Default + fmt::Debug, const N: usize> fmt::Debug for FixedVec<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_str_truncates_at_char_boundary() {
        let s = FixedStr::<4>::from_bytes("abé€".as_bytes());
        assert_eq!(s.as_str(), "abé");
        assert!(s.truncated());
        let s = FixedStr::<8>::from_bytes(b"a\xffb");
        assert_eq!(s.as_str(), "a?b");
        assert!(!s.truncated());
    }

    #[test]
    fn fixed_vec_push_insert_remove() {
        let mut v = FixedVec::<u32, 3>::new();
        v.push(1).unwrap();
        v.push(3).unwrap();
        v.insert(1, 2).unwrap();
        assert_eq!(v.push(4), Err(4));
        assert_eq!(v.as_slice(), &[1, 2, 3]);
        assert_eq!(v.remove(0), 1);
        assert_eq!(v.as_slice(), &[2, 3]);
    }
}

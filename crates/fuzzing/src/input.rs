//! Reading choices out of fuzzer bytes, and writing them (for seeds).
//!
//! A target that needs more than a byte string (a stream length, a list of network events)
//! reads its choices from the input with [`Input`]; running out of bytes reads zeros, so every
//! input, however short, is a valid scenario. [`Recipe`] writes the same choices, so a seed can
//! be spelled as "a 3000-byte stream, deliver, deliver, drop" and stays readable when the input
//! format changes.

/// The fuzzer's bytes, consumed front to back.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads choices from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// True once every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// Whatever is left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// A big-endian number of `width` bytes (at most 8); missing bytes read as zero.
    fn number(&mut self, width: usize) -> u64 {
        let mut value = 0u64;
        for i in 0..width {
            let byte = self.data.get(i).copied().unwrap_or(0);
            value = value << 8 | u64::from(byte);
        }
        self.bytes(width);
        value
    }

    /// One byte.
    pub fn u8(&mut self) -> u8 {
        self.number(1) as u8
    }

    /// Two bytes.
    pub fn u16(&mut self) -> u16 {
        self.number(2) as u16
    }

    /// Four bytes.
    pub fn u32(&mut self) -> u32 {
        self.number(4) as u32
    }

    /// Eight bytes.
    pub fn u64(&mut self) -> u64 {
        self.number(8)
    }

    /// A coin.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A number below `n` (0 when `n` is 0), read from as few bytes as `n` needs.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.number(width(n)) % n
    }

    /// A length below `n` followed by that many bytes.
    pub fn chunk(&mut self, n: usize) -> &'a [u8] {
        let len = self.below(n as u64) as usize;
        self.bytes(len)
    }
}

/// Bytes [`Input::below`] reads for a bound of `n`.
fn width(n: u64) -> usize {
    let bits = 64 - (n - 1).leading_zeros() as usize;
    bits.div_ceil(8).max(1)
}

/// Writes the choices an [`Input`] reads back, in the same order: how seeds are spelled.
#[derive(Debug, Clone, Default)]
pub struct Recipe {
    bytes: Vec<u8>,
}

impl Recipe {
    /// An empty recipe.
    pub fn new() -> Self {
        Self::default()
    }

    /// The input.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }

    /// Raw bytes, read back by [`Input::bytes`] or [`Input::rest`].
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// One byte.
    pub fn u8(self, v: u8) -> Self {
        self.bytes(&[v])
    }

    /// Two bytes.
    pub fn u16(self, v: u16) -> Self {
        self.bytes(&v.to_be_bytes())
    }

    /// Four bytes.
    pub fn u32(self, v: u32) -> Self {
        self.bytes(&v.to_be_bytes())
    }

    /// Eight bytes.
    pub fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_be_bytes())
    }

    /// A coin.
    pub fn bool(self, v: bool) -> Self {
        self.u8(u8::from(v))
    }

    /// `v` as [`Input::below`]`(n)` reads it (`v` must be below `n`; a bound of 0 reads
    /// nothing).
    pub fn below(self, v: u64, n: u64) -> Self {
        if n == 0 {
            return self;
        }
        debug_assert!(v < n, "{v} is not below {n}");
        let width = width(n);
        let be = v.to_be_bytes();
        self.bytes(&be[8 - width..])
    }

    /// `data` as [`Input::chunk`]`(n)` reads it.
    pub fn chunk(self, data: &[u8], n: usize) -> Self {
        self.below(data.len() as u64, n as u64).bytes(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipe_reads_back_as_written() {
        let bytes = Recipe::new()
            .u8(7)
            .below(300, 1000)
            .below(5, 6)
            .below(1 << 40, 1 << 41)
            .chunk(b"abc", 100)
            .u64(u64::MAX)
            .bool(true)
            .finish();
        let mut input = Input::new(&bytes);
        assert_eq!(input.u8(), 7);
        assert_eq!(input.below(1000), 300);
        assert_eq!(input.below(6), 5);
        assert_eq!(input.below(1 << 41), 1 << 40);
        assert_eq!(input.chunk(100), b"abc");
        assert_eq!(input.u64(), u64::MAX);
        assert!(input.bool());
        assert!(input.is_empty());
        assert_eq!(input.u32(), 0, "exhausted input reads zeros");
    }

    #[test]
    fn bounds_take_as_few_bytes_as_they_need() {
        assert_eq!(width(1), 1);
        assert_eq!(width(256), 1);
        assert_eq!(width(257), 2);
        assert_eq!(width(u64::MAX), 8);
    }
}

//! The Internet checksum (RFC 1071): a one's-complement sum kept as a wide partial sum so
//! pieces can be summed apart and combined, with byte-parity tracking for odd-length pieces.

/// Partial one's-complement sum of `data` read as big-endian 16-bit words (folded to 16
/// bits, so partial sums of pieces can simply be added).
///
/// The one's-complement sum is independent of byte order (RFC 1071, section 2): native-endian
/// 32-bit words are added into a 64-bit accumulator (a loop LLVM vectorizes), folded, and
/// swapped to network order at the end.
#[inline]
pub fn sum(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 4];
        last[..rest.len()].copy_from_slice(rest);
        acc += u32::from_ne_bytes(last) as u64;
    }
    let folded = fold(acc);
    (if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    }) as u64
}

/// Fold a partial sum to 16 bits (not complemented).
#[inline]
pub fn fold(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The checksum field value for a partial sum: folded and complemented.
#[inline]
pub fn finish(s: u64) -> u16 {
    !fold(s)
}

/// A checksum field after some of the bytes it covers changed from `old` to `new` (RFC 1624,
/// eqn. 3: HC' = ~(~HC + ~m + m')), both of even length and at an even offset of the
/// region, without summing the rest again.
#[inline]
pub fn adjust(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    // ~m summed word by word is (0xffff per word) - m; in one's complement, subtracting a
    // sum is adding its complement.
    let m = fold(sum(old));
    let m2 = fold(sum(new));
    let s = (!csum) as u64 + (!m) as u64 + m2 as u64;
    !fold(s)
}

/// Accumulates pieces of one checksummed region that may start at odd offsets.
#[derive(Debug, Default, Clone, Copy)]
pub struct Accumulator {
    sum: u64,
    odd: bool,
}

impl Accumulator {
    /// Add the next piece of the region.
    #[inline]
    pub fn add(&mut self, piece: &[u8]) {
        let s = sum(piece);
        if self.odd {
            // The piece starts on an odd byte: its words are byte-swapped relative to the region.
            let f = fold(s);
            self.sum += f.swap_bytes() as u64;
        } else {
            self.sum += s;
        }
        self.odd ^= piece.len() % 2 == 1;
    }

    /// Add `len` zero bytes: the sum stays, the byte parity moves.
    #[inline]
    pub fn add_zeros(&mut self, len: usize) {
        self.odd ^= len % 2 == 1;
    }

    /// The partial sum so far.
    #[inline]
    pub fn partial(&self) -> u64 {
        self.sum
    }
}

/// Copy `src` into the start of `dst` and add it to `acc` (one pass over hot cache lines).
#[inline]
pub fn copy_and_add(dst: &mut [u8], src: &[u8], acc: &mut Accumulator) {
    dst[..src.len()].copy_from_slice(src);
    acc.add(&dst[..src.len()]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                (c[0] as u16) << 8
            };
            s += w as u32;
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d)), 0xddf2);
    }

    proptest::proptest! {
        #[test]
        fn zeros_skipped_keep_the_parity(a in proptest::collection::vec(proptest::num::u8::ANY, 0..40), z in 0usize..20_000, b in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let mut whole = a.clone();
            whole.extend(std::iter::repeat_n(0u8, z));
            whole.extend(&b);
            let mut acc = Accumulator::default();
            acc.add(&a);
            acc.add_zeros(z);
            acc.add(&b);
            proptest::prop_assert_eq!(finish(acc.partial()), reference(&whole));
        }

        #[test]
        fn matches_reference_and_splits(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300), cuts in proptest::collection::vec(0usize..300, 0..5)) {
            proptest::prop_assert_eq!(finish(sum(&data)), reference(&data));
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort();
            let mut acc = Accumulator::default();
            let mut prev = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                acc.add(&data[prev..c]);
                prev = c;
            }
            proptest::prop_assert_eq!(finish(acc.partial()), reference(&data));
        }
    }
}

//! SHA-256 of raw messages: their blob keys. A message's compression rounds
//! form one chain of dependent instructions that keeps the CPU's SHA unit
//! busy only part of each cycle, so where the CPU has SHA extensions the
//! messages of a hand-over are hashed up to four at a time, their rounds
//! interleaved (on the reference machine's EPYC, a 4.2 KB message took
//! 2.64 µs alone and 1.48 µs four at a time: the largest single cost of a
//! parser thread under load). Elsewhere each is hashed by sha2 alone.

use sha2::{Digest, Sha256};

/// The sha256 of `raw`, hex-encoded: its blob key.
pub fn sha256_hex(raw: &[u8]) -> String {
    hex(&Sha256::digest(raw).into())
}

/// The sha256 of each of `raws`, hex-encoded, in their order: the same
/// keys as [`sha256_hex`], computed several messages at a time.
pub fn sha256_hex_all(raws: &[&[u8]]) -> Vec<String> {
    #[cfg(target_arch = "x86_64")]
    if lanes::available() {
        // Messages of about the same length share their rounds longest.
        let mut order: Vec<usize> = (0..raws.len()).collect();
        order.sort_unstable_by_key(|&i| raws[i].len());
        let mut keys = vec![String::new(); raws.len()];
        for group in order.chunks(lanes::LANES) {
            let digests = lanes::digest_all(group.iter().map(|&i| raws[i]));
            for (&i, digest) in group.iter().zip(&digests) {
                keys[i] = hex(digest);
            }
        }
        return keys;
    }
    raws.iter().map(|raw| sha256_hex(raw)).collect()
}

/// Lowercase hex of a digest.
fn hex(digest: &[u8; 32]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for &b in digest {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(target_arch = "x86_64")]
mod lanes {
    //! Up to four SHA-256 computations with their rounds interleaved, on
    //! the SHA extensions (SHA-NI): the instruction sequence of the
    //! well-known single-message SHA-NI routine (Intel's white paper, also
    //! sha2's x86 backend), repeated per lane.

    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_loadu_si128, _mm_set_epi64x,
        _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
        _mm_shuffle_epi32, _mm_shuffle_epi8, _mm_storeu_si128,
    };

    /// How many messages are hashed together at most.
    pub(super) const LANES: usize = 4;

    /// A 64-byte SHA-256 block.
    type Block = [u8; 64];

    /// The initial hash value (FIPS 180-4 §5.3.3).
    const H0: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    /// The round constants (FIPS 180-4 §4.2.2).
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// One message as SHA-256 consumes it: its whole blocks in place, then its
    /// last partial block and the padding (FIPS 180-4 §5.1.1) in one or two
    /// blocks of its own.
    struct Padded<'a> {
        whole: &'a [Block],
        tail: [Block; 2],
        tail_blocks: usize,
        /// Blocks already compressed.
        done: usize,
    }

    impl<'a> Padded<'a> {
        fn new(raw: &'a [u8]) -> Self {
            let (whole, rest) = raw.as_chunks::<64>();
            let mut tail = [[0u8; 64]; 2];
            let flat = tail.as_flattened_mut();
            flat[..rest.len()].copy_from_slice(rest);
            flat[rest.len()] = 0x80;
            // The length in bits must fit after the 0x80 byte in the block.
            let tail_blocks = if rest.len() < 56 { 1 } else { 2 };
            let bits = (raw.len() as u64).wrapping_mul(8);
            flat[tail_blocks * 64 - 8..tail_blocks * 64].copy_from_slice(&bits.to_be_bytes());
            Self {
                whole,
                tail,
                tail_blocks,
                done: 0,
            }
        }

        /// The next blocks that lie together in memory (empty when done).
        fn run(&self) -> &[Block] {
            match self.done.checked_sub(self.whole.len()) {
                None => &self.whole[self.done..],
                Some(in_tail) => &self.tail[in_tail..self.tail_blocks],
            }
        }
    }

    /// Whether this CPU has the instructions [`compress`] uses.
    pub(super) fn available() -> bool {
        std::is_x86_feature_detected!("sha")
            && std::is_x86_feature_detected!("sse4.1")
            && std::is_x86_feature_detected!("ssse3")
    }

    /// The digests of up to [`LANES`] messages (only after [`available`]).
    pub(super) fn digest_all<'a>(raws: impl Iterator<Item = &'a [u8]>) -> Vec<[u8; 32]> {
        let mut msgs: Vec<Padded<'a>> = raws.map(Padded::new).collect();
        let mut states = vec![H0; msgs.len()];
        match msgs.len() {
            4 => together::<4>(&mut msgs, &mut states),
            3 => together::<3>(&mut msgs, &mut states),
            2 => together::<2>(&mut msgs, &mut states),
            _ => {}
        }
        // Whatever a lane still holds once another ran out, alone.
        for (msg, state) in msgs.iter_mut().zip(&mut states) {
            together::<1>(std::slice::from_mut(msg), std::slice::from_mut(state));
        }
        states
            .iter()
            .map(|state| {
                let mut digest = [0u8; 32];
                for (out, word) in digest.chunks_exact_mut(4).zip(state) {
                    out.copy_from_slice(&word.to_be_bytes());
                }
                digest
            })
            .collect()
    }

    /// Compresses `L` messages' blocks together for as long as all of them
    /// have blocks left.
    fn together<const L: usize>(msgs: &mut [Padded<'_>], states: &mut [[u32; 8]]) {
        // Callers pass L of each; were they not, the messages would simply
        // be hashed one by one afterwards.
        let (Ok(msgs), Ok(lanes)) = (
            <&mut [Padded<'_>; L]>::try_from(msgs),
            <&mut [[u32; 8]; L]>::try_from(states),
        ) else {
            return;
        };
        loop {
            let n = msgs.iter().map(|m| m.run().len()).min().unwrap_or(0);
            if n == 0 {
                return;
            }
            let blocks: [&[Block]; L] = std::array::from_fn(|l| msgs[l].run());
            // SAFETY: `available()` said the CPU has SHA, SSE4.1 and SSSE3
            // (`digest_all` runs only after it); every lane has at least
            // `n` blocks, and `compress` indexes them (bounds-checked).
            unsafe { compress::<L>(lanes, blocks, n) };
            for m in msgs.iter_mut() {
                m.done += n;
            }
        }
    }

    /// The SHA-256 compression of the first `n` blocks of `blocks[l]` into
    /// `states[l]` for each lane, rounds interleaved lane by lane.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn compress<const L: usize>(
        states: &mut [[u32; 8]; L],
        blocks: [&[Block]; L],
        n: usize,
    ) {
        // Big-endian words from each 16-byte quarter of a block.
        let order = _mm_set_epi64x(0x0C0D_0E0F_0809_0A0B, 0x0405_0607_0001_0203);
        let zero = _mm_setzero_si128();
        let (mut abef, mut cdgh) = ([zero; L], [zero; L]);
        for l in 0..L {
            (abef[l], cdgh[l]) = load(&states[l]);
        }
        for b in 0..n {
            let (abef0, cdgh0) = (abef, cdgh);
            let mut w = [[zero; 4]; L];
            for (l, lane) in blocks.iter().enumerate() {
                let at = lane[b].as_ptr().cast::<__m128i>();
                for (j, word) in w[l].iter_mut().enumerate() {
                    *word = _mm_shuffle_epi8(_mm_loadu_si128(at.add(j)), order);
                }
            }
            for i in 0..16 {
                let j = i & 3;
                for l in 0..L {
                    if i >= 4 {
                        let w = &mut w[l];
                        w[j] = schedule(w[j], w[(j + 1) & 3], w[(j + 2) & 3], w[(j + 3) & 3]);
                    }
                    let k = _mm_loadu_si128(K.as_ptr().add(4 * i).cast());
                    let t = _mm_add_epi32(w[l][j], k);
                    cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], t);
                    abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(t, 0x0E));
                }
            }
            for l in 0..L {
                abef[l] = _mm_add_epi32(abef[l], abef0[l]);
                cdgh[l] = _mm_add_epi32(cdgh[l], cdgh0[l]);
            }
        }
        for l in 0..L {
            store(&mut states[l], abef[l], cdgh[l]);
        }
    }

    /// The next four message-schedule words from the previous sixteen.
    #[inline(always)]
    unsafe fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
        let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4));
        _mm_sha256msg2_epu32(t, w3)
    }

    /// A state as the SHA instructions hold it: ABEF and CDGH.
    #[inline(always)]
    unsafe fn load(state: &[u32; 8]) -> (__m128i, __m128i) {
        let at = state.as_ptr().cast::<__m128i>();
        let cdab = _mm_shuffle_epi32(_mm_loadu_si128(at), 0xB1);
        let efgh = _mm_shuffle_epi32(_mm_loadu_si128(at.add(1)), 0x1B);
        (
            _mm_alignr_epi8(cdab, efgh, 8),
            _mm_blend_epi16(efgh, cdab, 0xF0),
        )
    }

    /// Back from ABEF and CDGH to A…H.
    #[inline(always)]
    unsafe fn store(state: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let at = state.as_mut_ptr().cast::<__m128i>();
        _mm_storeu_si128(at, _mm_blend_epi16(feba, dchg, 0xF0));
        _mm_storeu_si128(at.add(1), _mm_alignr_epi8(dchg, feba, 8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lowercase_sha256_hex() {
        // FIPS 180-4 examples.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex_all(&[b"abc"]),
            ["ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]
        );
    }

    #[test]
    fn hashing_together_gives_each_message_its_own_key() {
        // Every padding case (a tail of one or two blocks, none whole),
        // lanes of equal and of very different lengths, groups of one to
        // four and a partial last group, each message compared with sha2
        // alone.
        let bytes: Vec<u8> = (0..20_100u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let lengths: Vec<usize> = (0..=130)
            .chain([191, 192, 4_095, 4_096, 4_233, 4_233, 4_233, 19_999])
            .collect();
        for count in 1..=9 {
            for first in 0..lengths.len() {
                let raws: Vec<&[u8]> = (0..count)
                    .map(|k| {
                        let len = lengths[(first + 37 * k) % lengths.len()];
                        &bytes[k..k + len]
                    })
                    .collect();
                let want: Vec<String> = raws.iter().map(|r| sha256_hex(r)).collect();
                assert_eq!(
                    sha256_hex_all(&raws),
                    want,
                    "lengths {:?}",
                    raws.iter().map(|r| r.len()).collect::<Vec<_>>()
                );
            }
        }
    }
}

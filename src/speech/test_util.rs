//! Test helpers shared by the speech tests: a small deterministic PRNG (xorshift64*) and random
//! splits of a text into stream pieces at char boundaries.

/// xorshift64*: deterministic, so a failing seed can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Splits `text` into pieces of 1..=`max_chars` chars (random lengths), as a model streams.
pub fn random_pieces(text: &str, rng: &mut Rng, max_chars: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let n = 1 + rng.below(max_chars.max(1));
        let end = (at + n).min(chars.len());
        pieces.push(chars[at..end].iter().collect());
        at = end;
    }
    pieces
}

/// Every split of `text` into two pieces at a char boundary, plus one piece per char.
pub fn all_two_piece_splits(text: &str) -> Vec<Vec<String>> {
    let mut splits: Vec<Vec<String>> = text
        .char_indices()
        .skip(1)
        .map(|(i, _)| vec![text[..i].to_string(), text[i..].to_string()])
        .collect();
    splits.push(text.chars().map(String::from).collect());
    splits
}

//! Speech (placeholder)
pub mod sentences;
pub mod speakable;
pub mod think;
#[cfg(test)]
mod test_util;

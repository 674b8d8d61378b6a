//! Speech (placeholder)
pub mod think;
#[cfg(test)]
mod test_util;

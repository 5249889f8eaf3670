//! Micro-benchmarks (not yet implemented beyond the round trip).
pub fn run() -> i32 {
    0
}

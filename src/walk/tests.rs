//! Tests of the stack walker: synthetic CFI on fake stacks, and real threads.

// The fakes live in `walk::fake` (the fuzz target uses them too).
use super::fake;

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod after_fork;
mod cfi;
mod constructor;
#[cfg(feature = "fuzzing")]
mod fuzz_seeds;
mod isa;
mod real;
mod recipes;
mod row_cache;
mod rules;
mod shapes;
mod slots;
mod world;

//! Tests of the stack walker: synthetic CFI on fake stacks, and real threads.

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod cfi;
mod constructor;
mod fake;
mod isa;
mod real;
mod rules;
mod shapes;
mod world;

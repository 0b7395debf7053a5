//! Tests of the stack walker: synthetic CFI on fake stacks, and real threads.

mod cfi;
mod constructor;
mod fake;
mod real;
mod rules;
mod shapes;
mod world;

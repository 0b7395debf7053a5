//! Fuzz target: the CFI stack walker on arbitrary `.eh_frame` / `.eh_frame_hdr`
//! bytes (given, a header built from the `.eh_frame`, or the same bytes as both),
//! a fake stack and a register set (`hijack_tls::__fuzz` documents the input
//! layout). The walk must end in a result or an error: never a panic, a hang or a
//! read outside the buffers; and a second walk taking its rows from the row cache
//! must give the same answer.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Ok or Err are both fine; what matters is that the walk returns.
    let _ = hijack_tls::__fuzz::walk_input(data);
});

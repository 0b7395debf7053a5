//! The fuzz target's entry point on valid synthetic processes, which are also the
//! seed corpus of `fuzz/walker_cfi`: with `HIJACK_TLS_WALKER_SEEDS=<dir>`,
//! `cargo test --features fuzzing fuzz_seeds` writes them there.

use super::cfi::{self, Cfi, Expression, Func};
use super::isa::{RA, SP};
use crate::walk::fuzz::{EH_FRAME_ADDR, EH_FRAME_HDR_ADDR, LIBC, encode_input, walk_input};

/// App functions (below `LIBC`).
const INNER: u64 = 0x1_0000;
const MIDDLE: u64 = 0x1_0100;
const START: u64 = 0x1_0200;
const ENTRY: u64 = 0x1_0300;
/// libc functions.
const START_THREAD: u64 = LIBC;
const CLONE: u64 = LIBC + 0x100;
const CALL_MAIN: u64 = LIBC + 0x200;
const START_MAIN: u64 = LIBC + 0x300;
const TLS_DTORS: u64 = LIBC + 0x400;

/// The fake stack's base.
const STACK: u64 = 0x7000_0000;

/// A return address inside `f`.
const fn ret(f: u64) -> u64 {
    f + 0x40
}

/// Every function with a 16-byte frame, except the outermost ones; INNER's CFA
/// as an expression (`DW_OP_breg<sp> 16`) when `expression`.
fn funcs(expression: bool) -> Vec<Func> {
    let frame = || vec![Cfi::Cfa(SP, 16)];
    let inner = if expression {
        let mut cfa = Expression::new();
        cfa.op_breg(SP, 16);
        vec![Cfi::CfaExpression(cfa)]
    } else {
        frame()
    };
    vec![
        Func::new(INNER, 0x100, inner),
        Func::new(MIDDLE, 0x100, frame()),
        Func::new(START, 0x100, frame()),
        Func::new(ENTRY, 0x100, vec![Cfi::Undefined(RA)]),
        Func::new(START_THREAD, 0x100, frame()),
        Func::new(CLONE, 0x100, vec![Cfi::Undefined(RA)]),
        Func::new(CALL_MAIN, 0x100, frame()),
        Func::new(START_MAIN, 0x100, frame()),
        Func::new(TLS_DTORS, 0x100, frame()),
    ]
}

/// One input: frames of 16 bytes from `STACK`, frame `i` returning to `pcs[i+1]`
/// (its slot at sp + 8); the header given, or built by the target if `!given`.
fn input(pcs: &[u64], expression: bool, given: bool) -> Vec<u8> {
    let (hdr, eh_frame) = cfi::sections(&funcs(expression), EH_FRAME_HDR_ADDR, EH_FRAME_ADDR, true);
    let mut words = vec![0u64; 2 * pcs.len() + 2];
    for (i, pc) in pcs.iter().enumerate().skip(1) {
        words[2 * (i - 1) + 1] = *pc;
    }
    let stack: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let hdr = if given { hdr } else { Vec::new() };
    encode_input(&eh_frame, &hdr, &stack, STACK, &[pcs[0], STACK])
}

#[test]
fn fuzz_seeds() {
    let thread = [ret(INNER), ret(MIDDLE), ret(START), ret(START_THREAD), ret(CLONE)];
    let main = [ret(INNER), ret(START), ret(CALL_MAIN), ret(START_MAIN), ret(ENTRY)];
    let dtors = [ret(INNER), ret(START), ret(TLS_DTORS), ret(START_THREAD), ret(CLONE)];
    let seeds = [
        ("thread", input(&thread, false, true), Ok(())),
        ("thread-built-header", input(&thread, false, false), Ok(())),
        ("thread-cfa-expression", input(&thread, true, true), Ok(())),
        ("main", input(&main, false, false), Ok(())),
        ("tls-destructor", input(&dtors, false, true), Err("not a thread start")),
    ];
    let dir = std::env::var_os("HIJACK_TLS_WALKER_SEEDS");
    for (name, data, want) in seeds {
        let got = walk_input(&data);
        match want {
            Ok(()) => assert_eq!(got, Ok(()), "{name}"),
            Err(part) => assert!(got.as_ref().is_err_and(|e| e.contains(part)), "{name}: {got:?}"),
        }
        // Mode 2: the same bytes as header and `.eh_frame`; any result will do.
        let mut raw = data.clone();
        raw[0] = 2;
        let _ = walk_input(&raw);
        if let Some(dir) = &dir {
            let dir = std::path::Path::new(dir);
            std::fs::write(dir.join(format!("seed-{name}")), &data).expect("write seed");
            std::fs::write(dir.join(format!("seed-{name}-raw")), &raw).expect("write seed");
        }
    }
}

#[test]
fn short_and_odd_inputs_are_errors() {
    for data in [&[][..], &[0], &[1, 255], &[2, 3, 0xff, 0xff, 0xff, 0xff]] {
        assert!(walk_input(data).is_err(), "{data:?}");
    }
    // A stack whose end would pass 2^64.
    let data = encode_input(&[], &[], &[0; 16], u64::MAX - 8, &[0x1_0040, 0]);
    assert_eq!(walk_input(&data), Err("the stack ends past 2^64".to_owned()));
}

//! Branch Target Identification (BTI): in pages of a BTI-marked object, an
//! indirect branch (`br`, `blr`) must land on a `bti` instruction. The hijack
//! never branches indirectly: the start routine's `ret` enters the trampoline and
//! the trampoline's `ret` leaves it, and `ret` is not checked by BTI.

/// `AT_HWCAP2` bit: the CPU implements BTI (Linux
/// `arch/arm64/include/uapi/asm/hwcap.h`, `HWCAP2_BTI`).
const HWCAP2_BTI: u64 = 1 << 17;

/// One line for `cargo run --example doctor`: whether the CPU enforces BTI.
pub(crate) fn branch_target_state() -> &'static str {
    // SAFETY: `getauxval` has no preconditions; it returns 0 for an absent entry.
    let hwcap2 = unsafe { libc::getauxval(libc::AT_HWCAP2) };
    if hwcap2 & HWCAP2_BTI != 0 {
        "supported by this CPU (enforced in BTI-marked objects; the trampoline is \
         entered and left by ret, which BTI does not check)"
    } else {
        "not supported by this CPU"
    }
}

//! Pointer authentication (PAC) of return addresses.
//!
//! A frame built with `-mbranch-protection=pac-ret` (or rustc's
//! `-Zbranch-protection=pac-ret`) signs x30 with `paciasp` on entry, before saving
//! it: key IA, modifier = sp at entry, which is the frame's CFA. Before its `ret` it
//! reloads x30 and checks it with `autiasp` (same key, same sp). Its CFI says so
//! with `DW_CFA_AARCH64_negate_ra_state` after the `paciasp`, which sets the
//! `RA_SIGN_STATE` pseudo-register to 1 for the rest of the frame.
//!
//! The hijack therefore
//! - strips the slot's word to learn the original address ([`strip_return_address`],
//!   `xpaclri`), and
//! - stores the trampoline entry signed exactly as `paciasp` would have signed it
//!   ([`sign_return_address`], `pacia1716` with the frame's CFA), so `autiasp`
//!   (and libgcc, which authenticates with `autia1716` and the CFA while
//!   unwinding) accepts it.
//!
//! Every instruction used here is in the HINT space: on a CPU without PAC (or with
//! the feature off) it is a NOP, so a "signed" address is the plain address and
//! both functions return their input unchanged. The keys are per process on Linux
//! (set at `exec`), but the crate signs only on the thread whose frame it signs for,
//! right before that thread writes the slot.

use core::arch::asm;

/// The code address inside a return address as stored on the stack: a signed one
/// (`signed`, from the frame's `RA_SIGN_STATE`) has its PAC bits removed; an
/// unsigned one is returned as is.
pub(crate) fn strip_return_address(ra: u64, signed: bool) -> u64 {
    if !signed {
        return ra;
    }
    let mut lr = ra;
    // SAFETY: `hint #7` is XPACLRI: it removes the PAC field from x30 and touches
    // nothing else (no memory, no flags, no stack); a NOP without PAC.
    unsafe { asm!("hint #7", inout("x30") lr, options(nomem, nostack, preserves_flags)) };
    lr
}

/// `address` signed as a return address saved by a frame whose CFA is `modifier`,
/// as that frame's own `paciasp` would sign it: key IA, modifier = sp at entry =
/// CFA. Must run on the thread that owns the frame.
pub(crate) fn sign_return_address(address: u64, modifier: u64) -> u64 {
    let mut signed = address;
    // SAFETY: `hint #8` is PACIA1716: it signs x17 with key IA and modifier x16,
    // writes x17 and touches nothing else; a NOP without PAC.
    unsafe {
        asm!(
            "hint #8",
            inout("x17") signed,
            in("x16") modifier,
            options(nomem, nostack, preserves_flags),
        )
    };
    signed
}

/// `AT_HWCAP` bit: the CPU implements address authentication (Linux
/// `arch/arm64/include/uapi/asm/hwcap.h`, `HWCAP_PACA`).
const HWCAP_PACA: u64 = 1 << 30;

/// `prctl` request returning the mask of enabled PAC keys (Linux 5.13+).
const PR_PAC_GET_ENABLED_KEYS: libc::c_int = 61;

/// Bit of that mask for the IA key, the one `paciasp` uses.
const PR_PAC_APIAKEY: libc::c_int = 1;

/// Whether the CPU implements address authentication (so `paciasp` really signs).
pub(crate) fn pointer_auth_supported() -> bool {
    // SAFETY: `getauxval` has no preconditions; it returns 0 for an absent entry.
    let hwcap = unsafe { libc::getauxval(libc::AT_HWCAP) };
    hwcap & HWCAP_PACA != 0
}

/// One line for `cargo run --example doctor`: whether return addresses are
/// signed and checked on this machine.
pub(crate) fn pointer_auth_state() -> &'static str {
    if !pointer_auth_supported() {
        return "not supported by this CPU: pac-ret code runs unsigned";
    }
    // SAFETY: this request takes no pointer arguments; the rest must be zero.
    let keys = unsafe { libc::prctl(PR_PAC_GET_ENABLED_KEYS, 0, 0, 0, 0) };
    match keys {
        ..0 => "supported by this CPU (the kernel does not report enabled keys)",
        keys if keys & PR_PAC_APIAKEY != 0 => {
            "enabled (key IA): return addresses of pac-ret frames are signed and checked"
        }
        _ => "supported, but key IA is disabled for this thread: pac-ret code runs unsigned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `addr` authenticated like libgcc does (`autia1716`): faults or yields a
    /// poisoned address when the signature does not match.
    fn authenticate(addr: u64, modifier: u64) -> u64 {
        let mut checked = addr;
        // SAFETY: `hint #12` is AUTIA1716: it authenticates x17 with key IA and
        // modifier x16 and writes x17; called only with matching signatures here.
        unsafe {
            asm!(
                "hint #12",
                inout("x17") checked,
                in("x16") modifier,
                options(nomem, nostack, preserves_flags),
            )
        };
        checked
    }

    #[test]
    fn sign_strip_and_authenticate_round_trip() {
        let address = sign_strip_and_authenticate_round_trip as *const () as u64;
        let cfa = 0x0000_ffff_f000_1230;
        let signed = sign_return_address(address, cfa);
        assert_eq!(strip_return_address(signed, true), address);
        assert_eq!(authenticate(signed, cfa), address);
        // A pointer that is not signed is left alone.
        assert_eq!(strip_return_address(address, false), address);
        if pointer_auth_supported() {
            assert_ne!(signed, address, "PAC bits added");
            assert_ne!(sign_return_address(address, cfa + 16), signed, "modifier matters");
        } else {
            assert_eq!(signed, address, "a NOP without PAC");
        }
        println!("PAC: {} ({address:#x} signed {signed:#x})", pointer_auth_state());
    }
}

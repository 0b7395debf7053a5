//! The one selection point for ISA-specific code: every supported ISA exports
//! the same names from `arch/<isa>/mod.rs`.

#[cfg(all(hijack_supported, target_arch = "x86_64"))]
#[path = "../arch/x86_64/mod.rs"]
mod imp;

#[cfg(all(hijack_supported, target_arch = "aarch64"))]
#[path = "../arch/aarch64/mod.rs"]
mod imp;

#[cfg(hijack_supported)]
pub(crate) use imp::*;

/// The positions of the bits set in `mask`, lowest first; `N` must be their count.
#[cfg(hijack_supported)]
pub(crate) const fn bit_positions<const N: usize>(mask: u64) -> [usize; N] {
    let mut positions = [0; N];
    let (mut bit, mut found) = (0, 0);
    while bit < 64 {
        if mask & (1 << bit) != 0 {
            positions[found] = bit;
            found += 1;
        }
        bit += 1;
    }
    assert!(found == N, "N is not the number of bits set");
    positions
}

#[cfg(all(test, hijack_supported))]
mod tests {
    use super::*;
    use gimli::Register;

    #[test]
    fn callee_saved_view_and_forget() {
        let mut ctx = Context::new();
        for reg in Context::REGISTERS {
            ctx.set(reg, u64::from(reg.0) + 1);
        }
        // Over a context that knew every register: the others become unknown.
        let mut saved = ctx;
        saved.inherit_callee_saved(&ctx);
        for reg in Context::REGISTERS {
            let expected = is_callee_saved(reg).then_some(u64::from(reg.0) + 1);
            assert_eq!(saved.get(reg), expected, "register {}", reg.0);
        }
        ctx.forget(SP);
        assert_eq!(ctx.get(SP), None);
        ctx.forget(Register(200)); // outside the file: ignored
        assert!(!is_callee_saved(Register(200)));
    }

    #[test]
    fn equality_ignores_unknown_slots() {
        let mut a = Context::new();
        a.set(SP, 0x1000);
        let mut b = a;
        b.set(RA, 0x2000);
        assert_ne!(a, b);
        b.forget(RA);
        assert_eq!(a, b, "only the unknown slot differs");
        b.set(SP, 0x1008);
        assert_ne!(a, b);
    }
}

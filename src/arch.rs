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
        let saved = ctx.callee_saved();
        for reg in Context::REGISTERS {
            let expected = is_callee_saved(reg).then_some(u64::from(reg.0) + 1);
            assert_eq!(saved.get(reg), expected, "register {}", reg.0);
        }
        ctx.forget(SP);
        assert_eq!(ctx.get(SP), None);
        ctx.forget(Register(200)); // outside the file: ignored
        assert!(!is_callee_saved(Register(200)));
    }
}

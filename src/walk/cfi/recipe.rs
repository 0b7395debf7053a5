//! A row compiled for the fast path: a CFA of register + offset and only the simple
//! register rules (undefined, same value, offset, val_offset, register), sorted by
//! register, plus what the walk needs of the frame's object. It packs into a few
//! machine words, so the recipe cache can copy it with plain atomic loads.
//!
//! Only rows that [`step::unwind_recipe`](super::step::unwind_recipe) unwinds
//! exactly as [`step::unwind`](super::step::unwind) would compile: no expression,
//! no signal frame, the ISA's return-address column, offsets that fit in 32 bits.

use super::fde::Meta;
use super::rules::Rules;
use crate::arch::{self, Context};
use crate::walk::RuleKind;
use gimli::{CfaRule, Register, RegisterRule};

/// Most register rules a recipe holds: every callee-saved register, the return
/// address and the stack pointer (8 on x86_64, 13 on aarch64). A row with more
/// is not compiled: the recipe stays a few words, copied without a `memcpy`.
pub(crate) const MAX_RULES: usize = arch::FULL_SAVE_RULES;

/// Words a packed recipe takes: the CFA, rule count and flags, the object's start,
/// the rules.
pub(crate) const WORDS: usize = 2 + MAX_RULES;

/// One register's rule, in the kinds a recipe keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SimpleRule {
    /// Unknown in the caller.
    Undefined,
    /// Unchanged in the caller.
    SameValue,
    /// Saved at CFA + n.
    Offset(i32),
    /// The value CFA + n.
    ValOffset(i32),
    /// Held in that register.
    Register(Register),
}

impl SimpleRule {
    /// The recipe form of `rule`, if it is simple and its offset fits.
    fn compile(rule: &RegisterRule<usize>) -> Option<Self> {
        match *rule {
            RegisterRule::Undefined => Some(Self::Undefined),
            RegisterRule::SameValue => Some(Self::SameValue),
            RegisterRule::Offset(n) => i32::try_from(n).ok().map(Self::Offset),
            RegisterRule::ValOffset(n) => i32::try_from(n).ok().map(Self::ValOffset),
            RegisterRule::Register(reg) => Some(Self::Register(reg)),
            RegisterRule::Expression(_)
            | RegisterRule::ValExpression(_)
            | RegisterRule::Architectural
            | RegisterRule::Constant(_) => None,
        }
    }

    /// The kind of rule, as errors and the target search name it.
    pub(crate) fn kind(self) -> RuleKind {
        match self {
            Self::Undefined => RuleKind::Undefined,
            Self::SameValue => RuleKind::SameValue,
            Self::Offset(_) => RuleKind::Offset,
            Self::ValOffset(_) => RuleKind::ValOffset,
            Self::Register(_) => RuleKind::Register,
        }
    }

    /// The gimli rule this came from.
    #[cfg(test)]
    pub(crate) fn to_gimli(self) -> RegisterRule<usize> {
        match self {
            Self::Undefined => RegisterRule::Undefined,
            Self::SameValue => RegisterRule::SameValue,
            Self::Offset(n) => RegisterRule::Offset(n.into()),
            Self::ValOffset(n) => RegisterRule::ValOffset(n.into()),
            Self::Register(reg) => RegisterRule::Register(reg),
        }
    }

    /// `(kind, payload)`: the kind in 1..=5 (0 marks an unused word).
    fn pack(self) -> (u8, u32) {
        match self {
            Self::Undefined => (1, 0),
            Self::SameValue => (2, 0),
            Self::Offset(n) => (3, n as u32),
            Self::ValOffset(n) => (4, n as u32),
            Self::Register(reg) => (5, reg.0.into()),
        }
    }

    /// The inverse of [`pack`](Self::pack), for a kind in 1..=5 (which
    /// `Recipe::is_valid` checks; any other reads as `Undefined`).
    fn unpack(kind: u8, payload: u32) -> Self {
        match kind {
            2 => Self::SameValue,
            3 => Self::Offset(payload as i32),
            4 => Self::ValOffset(payload as i32),
            5 => Self::Register(Register(payload as u16)),
            _ => Self::Undefined,
        }
    }
}

/// A compiled row and the facts about its frame's object that the walk reports,
/// kept packed (the form the recipe cache stores): word 0 holds the CFA rule, the
/// rule count and flags, word 1 the object's start, then one word per rule.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Recipe {
    /// The packed words; those past the rule count mean nothing.
    words: [u64; WORDS],
}

impl PartialEq for Recipe {
    fn eq(&self, other: &Self) -> bool {
        self.used() == other.used()
    }
}

impl Eq for Recipe {}

/// Bit of word 0: the frame's saved return address is signed.
const RA_SIGNED: u64 = 1 << 56;
/// Bit of word 0: the frame's object is libc.
const IS_LIBC: u64 = 1 << 57;
/// Shift of word 0's field holding the index of the return-address column's rule
/// among the rules, or [`NO_RA_RULE`].
const RA_INDEX_SHIFT: u32 = 58;
/// The index field's value when the return-address column has no rule.
const NO_RA_RULE: u64 = 0x3f;
const _: () = assert!(MAX_RULES < NO_RA_RULE as usize);

impl Recipe {
    /// The recipe for `rules` and `meta`, found in an object that is libc or not
    /// and starts at `object_start`, if the row is simple enough (module docs).
    pub(crate) fn compile(
        rules: &Rules,
        meta: &Meta,
        is_libc: bool,
        object_start: u64,
    ) -> Option<Self> {
        if meta.signal_trampoline || meta.ra_column != arch::RA {
            return None;
        }
        let CfaRule::RegisterAndOffset { register: cfa_register, offset } = rules.cfa() else {
            return None;
        };
        let ra_signed = rules.ra_signed()?;
        let mut words = [0; WORDS];
        let mut len = 0;
        let mut ra_index = NO_RA_RULE;
        for reg in Context::REGISTERS {
            if let Some(rule) = rules.register(reg) {
                let (kind, payload) = SimpleRule::compile(&rule)?.pack();
                *words.get_mut(2 + len)? =
                    u64::from(reg.0) | u64::from(kind) << 16 | u64::from(payload) << 32;
                if reg == arch::RA {
                    ra_index = len as u64;
                }
                len += 1;
            }
        }
        words[0] = u64::from(cfa_register.0)
            | u64::from(i32::try_from(offset).ok()? as u32) << 16
            | (len as u64) << 48
            | if ra_signed { RA_SIGNED } else { 0 }
            | if is_libc { IS_LIBC } else { 0 }
            | ra_index << RA_INDEX_SHIFT;
        words[1] = object_start;
        Some(Recipe { words })
    }

    /// No recipe: no rules, the CFA `register 0 + 0` (a buffer to load into).
    pub(crate) const EMPTY: Recipe = Recipe { words: [0; WORDS] };

    /// The words in use: the head, the object's start, the rules.
    fn used(&self) -> &[u64] {
        &self.words[..2 + self.len()]
    }

    /// Whether the words hold a recipe as `compile` makes them: a rule count
    /// within [`MAX_RULES`], every rule's kind in range, registers strictly
    /// increasing, and the return-address index naming the one rule of that
    /// column (or none, when no rule is of it).
    pub(crate) fn is_valid(&self) -> bool {
        let head = self.words[0];
        let len = Self::len_of(head);
        let ra_index = head >> RA_INDEX_SHIFT;
        if len > MAX_RULES || (ra_index != NO_RA_RULE && ra_index >= len as u64) {
            return false;
        }
        let mut previous = None;
        self.words[2..2 + len].iter().enumerate().all(|(index, &word)| {
            let register = Self::register_of(word);
            let in_order = previous.is_none_or(|previous| register.0 > previous);
            previous = Some(register.0);
            (1..=5).contains(&(word >> 16 & 0xff))
                && in_order
                && (register == arch::RA) == (index as u64 == ra_index)
        })
    }

    /// The packed words; only the first `2 + ` the rule count mean anything.
    pub(crate) fn words(&self) -> &[u64; WORDS] {
        &self.words
    }

    /// The packed words, to load a recipe into; check [`is_valid`](Self::is_valid)
    /// before using it.
    pub(crate) fn words_mut(&mut self) -> &mut [u64; WORDS] {
        &mut self.words
    }

    /// Words in use according to `head`, word 0 of a packed recipe (at most
    /// [`WORDS`]).
    pub(crate) fn used_words(head: u64) -> usize {
        (2 + Self::len_of(head)).min(WORDS)
    }

    /// The rule count packed in `head`.
    fn len_of(head: u64) -> usize {
        (head >> 48 & 0xff) as usize
    }

    /// Rules held (at most [`MAX_RULES`] in a valid recipe).
    fn len(&self) -> usize {
        Self::len_of(self.words[0]).min(MAX_RULES)
    }

    /// The CFA is this register's value..
    pub(crate) fn cfa_register(&self) -> Register {
        Register(self.words[0] as u16)
    }

    /// ..plus this.
    pub(crate) fn cfa_offset(&self) -> i32 {
        (self.words[0] >> 16) as u32 as i32
    }

    /// Whether the frame's saved return address is signed.
    pub(crate) fn ra_signed(&self) -> bool {
        self.words[0] & RA_SIGNED != 0
    }

    /// Whether the frame's object is libc.
    pub(crate) fn is_libc(&self) -> bool {
        self.words[0] & IS_LIBC != 0
    }

    /// Lowest mapped address of the frame's object.
    pub(crate) fn object_start(&self) -> u64 {
        self.words[1]
    }

    /// The registers with a rule and their rules, in increasing register order.
    pub(crate) fn rules(&self) -> impl Iterator<Item = (Register, SimpleRule)> + '_ {
        self.words[2..2 + self.len()]
            .iter()
            .map(|&word| (Self::register_of(word), Self::rule_of(word)))
    }

    /// The return-address column's rule, if it has one.
    pub(crate) fn ra_rule(&self) -> Option<SimpleRule> {
        let index = (self.words[0] >> RA_INDEX_SHIFT) as usize;
        self.words[2..2 + self.len()].get(index).map(|&word| Self::rule_of(word))
    }

    /// The rule of `reg`, if it has one.
    #[cfg(test)]
    pub(crate) fn rule(&self, reg: Register) -> Option<SimpleRule> {
        self.rules().find(|(r, _)| *r == reg).map(|(_, rule)| rule)
    }

    /// The register of a packed rule word.
    fn register_of(word: u64) -> Register {
        Register(word as u16)
    }

    /// The rule of a packed rule word.
    fn rule_of(word: u64) -> SimpleRule {
        SimpleRule::unpack((word >> 16) as u8, (word >> 32) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk::cfi::rules::Rules;

    /// Rules with the CFA `sp + 16` and `regs`.
    fn rules(regs: &[(Register, RegisterRule<usize>)]) -> Rules {
        let mut rules = Rules::NONE;
        rules.set_for_test(CfaRule::RegisterAndOffset { register: arch::SP, offset: 16 }, regs);
        rules
    }

    #[test]
    fn packs_and_unpacks() {
        let rules = rules(&[
            (arch::RA, RegisterRule::Offset(-8)),
            (Register(3), RegisterRule::Offset(-24)),
            (Register(6), RegisterRule::SameValue),
            (Register(1), RegisterRule::Register(Register(2))),
            (Register(2), RegisterRule::ValOffset(i64::from(i32::MIN))),
            (Register(0), RegisterRule::Undefined),
        ]);
        let recipe =
            Recipe::compile(&rules, &Meta::ordinary(), true, 0x5555_0000).expect("simple row");
        let regs: Vec<u16> = recipe.rules().map(|(reg, _)| reg.0).collect();
        let mut sorted = regs.clone();
        sorted.sort_unstable();
        assert_eq!(regs, sorted, "rules are in register order");
        assert_eq!(recipe.rules().count(), 6);
        let mut loaded = Recipe::EMPTY;
        let used = Recipe::used_words(recipe.words()[0]);
        loaded.words_mut()[..used].copy_from_slice(&recipe.words()[..used]);
        assert!(loaded.is_valid());
        assert_eq!(loaded, recipe);
        assert!(recipe.is_libc() && !recipe.ra_signed());
        assert_eq!((recipe.cfa_register(), recipe.cfa_offset()), (arch::SP, 16));
        assert_eq!(recipe.object_start(), 0x5555_0000);
        assert_eq!(recipe.rule(Register(3)), Some(SimpleRule::Offset(-24)));
        assert_eq!(recipe.rule(Register(4)), None);
        assert_eq!(recipe.ra_rule(), Some(SimpleRule::Offset(-8)));
        let no_ra = self::rules(&[(Register(3), RegisterRule::Offset(-24))]);
        let no_ra = Recipe::compile(&no_ra, &Meta::ordinary(), false, 0).expect("simple row");
        assert_eq!(no_ra.ra_rule(), None);
        for (reg, rule) in recipe.rules() {
            assert_eq!(rule.kind(), RuleKind::from(&rule.to_gimli()), "register {}", reg.0);
        }
        for (reg, rule) in recipe.rules() {
            assert_eq!(rules.register(reg), Some(rule.to_gimli()));
        }
    }

    #[test]
    fn refuses_what_it_cannot_unwind_exactly() {
        let simple = rules(&[(arch::RA, RegisterRule::Offset(-8))]);
        assert!(Recipe::compile(&simple, &Meta::ordinary(), false, 0).is_some());
        let signal = Meta { signal_trampoline: true, ..Meta::ordinary() };
        assert_eq!(Recipe::compile(&simple, &signal, false, 0), None);
        let other_ra = Meta { ra_column: Register(5), ..Meta::ordinary() };
        assert_eq!(Recipe::compile(&simple, &other_ra, false, 0), None);
        let expr = gimli::UnwindExpression { offset: 0, length: 1 };
        let mut cfa_expr = Rules::NONE;
        cfa_expr.set_for_test(CfaRule::Expression(expr), &[]);
        assert_eq!(Recipe::compile(&cfa_expr, &Meta::ordinary(), false, 0), None);
        let far = rules(&[(arch::RA, RegisterRule::Offset(1 << 40))]);
        assert_eq!(Recipe::compile(&far, &Meta::ordinary(), false, 0), None);
        let reg_expr = rules(&[(arch::RA, RegisterRule::Expression(expr))]);
        assert_eq!(Recipe::compile(&reg_expr, &Meta::ordinary(), false, 0), None);
        // One rule more than a recipe holds.
        let many: Vec<_> = Context::REGISTERS[..=MAX_RULES]
            .iter()
            .map(|&reg| (reg, RegisterRule::SameValue))
            .collect();
        assert_eq!(Recipe::compile(&rules(&many), &Meta::ordinary(), false, 0), None);
        assert!(Recipe::compile(&rules(&many[..MAX_RULES]), &Meta::ordinary(), false, 0).is_some());
        // The signing state: 0 or 1 only (aarch64; x86_64 has none).
        if let Some(state) = arch::RA_SIGN_STATE {
            let signed = rules(&[(state, RegisterRule::Constant(1))]);
            let recipe =
                Recipe::compile(&signed, &Meta::ordinary(), false, 0).expect("signed frame");
            assert!(recipe.ra_signed());
            let odd = rules(&[(state, RegisterRule::Constant(2))]);
            assert_eq!(Recipe::compile(&odd, &Meta::ordinary(), false, 0), None);
            let other = rules(&[(state, RegisterRule::SameValue)]);
            assert_eq!(Recipe::compile(&other, &Meta::ordinary(), false, 0), None);
        }
    }

    #[test]
    fn words_that_hold_no_recipe_are_refused() {
        let one = rules(&[(arch::RA, RegisterRule::Offset(-8))]);
        let recipe = Recipe::compile(&one, &Meta::ordinary(), false, 0).unwrap();
        assert!(recipe.is_valid());
        let with = |change: &dyn Fn(&mut [u64; WORDS])| {
            let mut changed = recipe;
            change(changed.words_mut());
            changed
        };
        // Claims two rules, the second word zero.
        assert!(!with(&|w| w[0] += 1 << 48).is_valid());
        // An unknown rule kind.
        assert!(!with(&|w| w[2] |= 0xff << 16).is_valid());
        // More rules than a recipe holds.
        assert!(!with(&|w| w[0] |= 0xff << 48).is_valid());
        // The return-address rule's index past the rules, at another register, or
        // "none" while a rule of that column is there.
        assert!(!with(&|w| w[0] = w[0] & !(0x3f << 58) | 1 << 58).is_valid());
        assert!(!with(&|w| w[2] = w[2] & !0xffff | 3).is_valid());
        assert!(!with(&|w| w[0] |= 0x3f << 58).is_valid());
        // Two rules: registers out of order or repeated.
        let two = rules(&[
            (Register(3), RegisterRule::Offset(-16)),
            (arch::RA, RegisterRule::Offset(-8)),
        ]);
        let two = Recipe::compile(&two, &Meta::ordinary(), false, 0).unwrap();
        assert!(two.is_valid());
        let mut swapped = two;
        swapped.words_mut().swap(2, 3);
        assert!(!swapped.is_valid(), "out of order");
        let mut repeated = two;
        repeated.words_mut()[2] = repeated.words()[3];
        assert!(!repeated.is_valid(), "a register twice");
        // Words past the rules do not matter.
        let stale = with(&|w| w[3] = u64::MAX);
        assert!(stale.is_valid());
        assert_eq!(stale, recipe);
    }
}

//! Stored values: shared, type-erased boxes, and the [`Value`] handle `del` returns.
//!
//! A value lives in a counted allocation ([`Shared`], like an `Rc<dyn Any>`). The
//! record holds one handle; a running `with` holds another ([`Pinned`]) for the
//! length of its closure, so a value removed while it is borrowed stays alive until
//! the borrow ends.

mod shared;

use core::fmt;

pub(crate) use shared::{Pinned, Shared, pin};

/// What storing a value displaced, handed out of the record to be dropped (user
/// code) after the borrow ends.
pub(crate) enum Displaced<V> {
    /// The key held no value.
    Nothing,
    /// The old value, a `V` that nothing borrowed: replaced in place, no allocation.
    InPlace(V),
    /// The handle to the old value (of another type, or borrowed by a `with`).
    Handle(Shared),
}

/// Wraps a new value for storage.
pub(crate) fn share<V: 'static>(value: V) -> Shared {
    Shared::new(value)
}

/// A value removed by [`del`](crate::del), handed back so the caller decides when it drops.
///
/// Dropping the `Value` drops the stored value, unless a [`with`](crate::with) on this
/// thread still borrows it: then it drops when that borrow ends.
pub struct Value {
    shared: Shared,
}

impl Value {
    pub(crate) fn new(shared: Shared) -> Self {
        Self { shared }
    }

    /// Whether the value is a `V`.
    pub fn is<V: 'static>(&self) -> bool {
        self.shared.is::<V>()
    }

    /// Borrows the value as a `V`, or `None` if it is of another type.
    pub fn downcast_ref<V: 'static>(&self) -> Option<&V> {
        self.shared.downcast_ref::<V>()
    }

    /// Takes the value out as a `V`.
    ///
    /// Gives `self` back if the value is of another type, or if an enclosing
    /// [`with`](crate::with) on this thread still borrows it (try again after it ends).
    pub fn downcast<V: 'static>(self) -> Result<V, Self> {
        if !self.is::<V>() || !self.shared.is_unique() {
            return Err(self);
        }
        // SAFETY: checked just above that the concrete type is V.
        let inner = unsafe { self.shared.into_inner_unchecked::<V>() };
        // The only handle, and nothing ran since, so into_inner succeeds.
        Ok(inner.expect("sole owner"))
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value").field("type_id", &self.shared.type_id()).finish()
    }
}

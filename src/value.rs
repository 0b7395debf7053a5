//! Stored values: shared, type-erased boxes, and the [`Value`] handle `del` returns.
//!
//! A value is an `Rc<dyn Any>`. The record holds one reference; a running `with`
//! holds another for the length of its closure, so a value removed while it is
//! borrowed stays alive until the borrow ends.

use core::any::Any;
use core::fmt;
use std::rc::Rc;

/// A stored value as the record holds it.
pub(crate) type Shared = Rc<dyn Any>;

/// Wraps a new value for storage.
pub(crate) fn share<V: 'static>(value: V) -> Shared {
    Rc::new(value)
}

/// Borrows `shared` as a `V` for `f`, keeping it alive for the call.
///
/// # Safety
/// `shared` must hold a `V`.
pub(crate) unsafe fn with_unchecked<V: 'static, R>(shared: Shared, f: impl FnOnce(&V) -> R) -> R {
    let pointer = Rc::as_ptr(&shared).cast::<V>();
    // SAFETY: the caller guarantees the concrete type is V; `shared` keeps the
    // allocation alive and unmoved until after `f` returns.
    f(unsafe { &*pointer })
}

/// Moves a `V` out of `shared` if this is its only reference.
///
/// Returns `None` (dropping this reference) when a `with` elsewhere on this thread
/// still borrows the value; the value then drops when that borrow ends.
///
/// # Safety
/// `shared` must hold a `V`.
pub(crate) unsafe fn into_inner_unchecked<V: 'static>(shared: Shared) -> Option<V> {
    let raw = Rc::into_raw(shared).cast::<V>();
    // SAFETY: the caller guarantees the concrete type is V, so the pointer came from
    // an Rc<V> that was unsized to Rc<dyn Any>; rebuilding the Rc<V> is sound.
    let typed = unsafe { Rc::from_raw(raw) };
    Rc::into_inner(typed)
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
        (*self.shared).is::<V>()
    }

    /// Borrows the value as a `V`, or `None` if it is of another type.
    pub fn downcast_ref<V: 'static>(&self) -> Option<&V> {
        (*self.shared).downcast_ref::<V>()
    }

    /// Takes the value out as a `V`.
    ///
    /// Gives `self` back if the value is of another type, or if an enclosing
    /// [`with`](crate::with) on this thread still borrows it (try again after it ends).
    pub fn downcast<V: 'static>(self) -> Result<V, Self> {
        if !self.is::<V>() || Rc::strong_count(&self.shared) != 1 {
            return Err(self);
        }
        // SAFETY: checked just above that the concrete type is V.
        let inner = unsafe { into_inner_unchecked::<V>(self.shared) };
        // strong_count was 1 and nothing ran since, so into_inner succeeds.
        Ok(inner.expect("sole owner"))
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value").field("type_id", &(*self.shared).type_id()).finish()
    }
}

//! The counted box a stored value lives in: an `Rc<dyn Any>` without the weak count
//! and without an overflow check on each new reference, so that pinning a value for
//! a read of a `Copy` type compiles to nothing but the read.
//!
//! # Safety
//! The count is the number of live handles: the one [`Shared`] (the record's, or a
//! [`Value`](crate::Value)'s after `del`) plus one [`Pinned`] per running `with` of
//! the value. A `Shared` is never cloned and a `Pinned` never escapes the `with`
//! that made it (it is dropped when the closure returns or unwinds), so the count
//! stays below two plus the depth of nested `with` calls on the stack: it cannot
//! overflow, which is why no check is needed. The allocation is made as an
//! `Inner<V>` and unsized to `Inner<dyn Any>`; code that knows `V` casts the thin
//! pointer back to `Inner<V>`, the type it was allocated as.

use core::any::{Any, TypeId};
use core::cell::Cell;
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;

/// One allocation: the count and the value. `repr(C)` fixes the value's offset, so
/// a pointer to an `Inner<V>` unsized to `Inner<dyn Any>` can be cast back.
#[repr(C)]
struct Inner<T: ?Sized> {
    /// Live handles (see the module docs).
    count: Cell<usize>,
    value: T,
}

/// The owning handle of a stored value.
pub(crate) struct Shared {
    inner: NonNull<Inner<dyn Any>>,
    _owns: PhantomData<Inner<dyn Any>>,
}

impl Shared {
    /// Moves `value` into a new allocation with one handle.
    pub(crate) fn new<V: 'static>(value: V) -> Self {
        let boxed: Box<Inner<dyn Any>> = Box::new(Inner { count: Cell::new(1), value });
        Self { inner: NonNull::from(Box::leak(boxed)), _owns: PhantomData }
    }

    fn inner(&self) -> &Inner<dyn Any> {
        // SAFETY: the allocation lives while any handle, `self` included, does.
        unsafe { self.inner.as_ref() }
    }

    /// The allocation's address, for [`pin`]. Stable for the value's life.
    #[inline]
    pub(crate) fn address(&self) -> *const () {
        self.inner.as_ptr().cast_const().cast::<()>()
    }

    /// The value's concrete type.
    pub(crate) fn type_id(&self) -> TypeId {
        self.inner().value.type_id()
    }

    /// Whether the value is a `V`.
    #[inline]
    pub(crate) fn is<V: 'static>(&self) -> bool {
        self.inner().value.is::<V>()
    }

    /// The value as a `V`, if it is one.
    pub(crate) fn downcast_ref<V: 'static>(&self) -> Option<&V> {
        self.inner().value.downcast_ref::<V>()
    }

    /// Whether this is the only handle (no `with` borrows the value).
    pub(crate) fn is_unique(&self) -> bool {
        self.inner().count.get() == 1
    }

    /// The value, mutably, if it is a `V` and this is the only handle.
    pub(crate) fn get_mut<V: 'static>(&mut self) -> Option<&mut V> {
        if !self.is::<V>() {
            return None;
        }
        // SAFETY: just checked to hold a V.
        unsafe { self.get_mut_unchecked() }
    }

    /// The value, mutably, if this is the only handle.
    ///
    /// # Safety
    /// The value must be a `V`.
    #[inline]
    pub(crate) unsafe fn get_mut_unchecked<V: 'static>(&mut self) -> Option<&mut V> {
        if !self.is_unique() {
            return None;
        }
        let inner = self.inner.as_ptr().cast::<Inner<V>>();
        // SAFETY: allocated as an Inner<V> (the caller guarantees V); the only
        // handle is `self`, borrowed mutably for the result's lifetime, so no other
        // reference to the value exists or can be made meanwhile.
        Some(unsafe { &mut (*inner).value })
    }

    /// Moves the `V` out if this is the only handle; otherwise gives up this handle
    /// and returns `None` (a `with` still borrows the value; it drops when that ends).
    ///
    /// # Safety
    /// The value must be a `V`.
    pub(crate) unsafe fn into_inner_unchecked<V: 'static>(self) -> Option<V> {
        let this = core::mem::ManuallyDrop::new(self);
        let inner = this.inner.as_ptr().cast::<Inner<V>>();
        // SAFETY: the allocation is live (this handle) and was made as an Inner<V>.
        let count = unsafe { &(*inner).count };
        if count.get() == 1 {
            // SAFETY: the only handle, consumed here: the Box takes the allocation
            // back with the type it was allocated as.
            Some(unsafe { Box::from_raw(inner) }.value)
        } else {
            count.set(count.get() - 1);
            None
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let count = &self.inner().count;
        let left = count.get() - 1;
        if left == 0 {
            // SAFETY: the last handle: the allocation came from `Box::leak` of a
            // `Box<Inner<dyn Any>>`, and nothing refers to it any more.
            drop(unsafe { Box::from_raw(self.inner.as_ptr()) });
        } else {
            count.set(left);
        }
    }
}

/// A handle held for the length of one `with`: keeps the value alive if the record
/// lets go of it meanwhile.
pub(crate) struct Pinned<V: 'static> {
    inner: NonNull<Inner<V>>,
}

/// A new handle to the `V` whose allocation is at `address`.
///
/// # Safety
/// `address` must be the [`Shared::address`] of a live `Shared` that holds a `V`,
/// and the returned handle must be dropped by the `with` that made it.
#[inline]
pub(crate) unsafe fn pin<V: 'static>(address: *const ()) -> Pinned<V> {
    let inner = address.cast::<Inner<V>>().cast_mut();
    // SAFETY: live (a Shared holds it) and allocated as an Inner<V>.
    let count = unsafe { &(*inner).count };
    let now = count.get();
    // SAFETY: the live Shared is a handle, so the count is at least 1. Telling the
    // compiler lets it cancel this increment against the `Pinned`'s decrement.
    unsafe { core::hint::assert_unchecked(now != 0) };
    count.set(now + 1);
    // SAFETY: `address` is non-null (it is a live allocation).
    Pinned { inner: unsafe { NonNull::new_unchecked(inner) } }
}

impl<V: 'static> Deref for Pinned<V> {
    type Target = V;

    #[inline]
    fn deref(&self) -> &V {
        // SAFETY: this handle keeps the allocation alive; values are only changed
        // in place through a unique handle, and this one makes it not unique.
        unsafe { &(*self.inner.as_ptr()).value }
    }
}

impl<V: 'static> Drop for Pinned<V> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this handle keeps the allocation alive.
        let count = unsafe { &(*self.inner.as_ptr()).count };
        let left = count.get() - 1;
        if left == 0 {
            // SAFETY: the last handle; the allocation was made as an Inner<V>.
            drop(unsafe { Box::from_raw(self.inner.as_ptr()) });
        } else {
            count.set(left);
        }
    }
}

//! The walk in a fork child whose loader write lock may be held
//! (`LoadedObjects::in_process_state(.., true)`): no `dl_iterate_phdr` call, no
//! load generation, and with `_dl_find_object` still a full walk.

use crate::arch::with_context;
use crate::walk::{LoadedObjects, Objects, StackMemory, Strategy, WalkError, find_exit_slot};

/// Any address inside this test binary.
fn a_pc() -> u64 {
    a_pc as *const () as u64
}

#[test]
fn no_generation_where_the_loader_lock_may_be_held() {
    for strategy in [Strategy::best(), Strategy::IteratePhdr] {
        let mut objects = LoadedObjects::in_process_state(strategy, true);
        assert_eq!(objects.load_generation(), None, "{strategy:?}");
        let mut normal = LoadedObjects::in_process_state(strategy, false);
        assert!(normal.load_generation().is_some(), "{strategy:?}");
    }
}

#[test]
fn dl_iterate_phdr_lookup_is_refused_where_the_loader_lock_may_be_held() {
    let mut objects = LoadedObjects::in_process_state(Strategy::IteratePhdr, true);
    assert_eq!(objects.find(a_pc()).err(), Some(WalkError::LoaderLockAfterFork));
    let mut normal = LoadedObjects::in_process_state(Strategy::IteratePhdr, false);
    assert!(normal.find(a_pc()).is_ok());
}

#[test]
fn find_object_walk_reaches_the_slot_without_a_generation() {
    let Strategy::FindObject(_) = Strategy::best() else {
        println!("no _dl_find_object (glibc < 2.35): nothing to check");
        return;
    };
    let found = std::thread::spawn(|| {
        with_context(|ctx| {
            let mut mem = StackMemory::current_thread(ctx)?;
            let mut objects = LoadedObjects::in_process_state(Strategy::best(), true);
            find_exit_slot(ctx, &mut mem, &mut objects, &mut |_| {})
        })
    })
    .join()
    .unwrap();
    assert!(found.is_ok(), "{found:?}");
}

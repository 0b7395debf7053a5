//! Typed `Key<u64>` reads and writes against std `thread_local!`, the
//! `thread_local` crate and a pthread key.

mod workloads;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use workloads::Alternatives;

fn reads(c: &mut Criterion) {
    let alternatives = Alternatives::new();
    alternatives.fill();
    workloads::fill_thread();
    let mut group = c.benchmark_group("key_u64_read");
    group.bench_function("Key::get", |b| b.iter(workloads::typed_get));
    group.bench_function("Key::with", |b| b.iter(workloads::typed_with));
    group.bench_function("Key::get as u64", |b| b.iter(workloads::typed_get_value));
    group.bench_function("Key::with as u64", |b| b.iter(workloads::typed_with_value));
    group.bench_function("thread_local! const Cell", |b| b.iter(workloads::cell_get));
    group.bench_function("ThreadLocal::get", |b| b.iter(|| alternatives.thread_local_get()));
    group.bench_function("pthread_getspecific", |b| b.iter(|| alternatives.pthread_get()));
    group.finish();
}

fn writes(c: &mut Criterion) {
    workloads::fill_thread();
    let mut group = c.benchmark_group("key_u64_set");
    group.bench_function("Key::set", |b| b.iter(|| workloads::typed_set(black_box(9))));
    group.bench_function("thread_local! const Cell", |b| {
        b.iter(|| workloads::cell_set(black_box(9)))
    });
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! { name = benches; config = quick(); targets = reads, writes }
criterion_main!(benches);

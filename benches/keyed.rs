//! Keyed operations (`&'static str` keys, `u64` values, 16 keys present) against a
//! `thread_local!` `RefCell<HashMap<&'static str, Box<dyn Any>>>`, plus `id()`.

mod workloads;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use workloads::threads;

fn get(c: &mut Criterion) {
    workloads::fill_thread();
    let mut group = c.benchmark_group("keyed_get_16");
    let mut i = 0;
    group.bench_function("hijack_tls::get", |b| {
        b.iter(|| {
            i += 1;
            workloads::keyed_get(black_box(i))
        })
    });
    group.bench_function("RefCell<HashMap>", |b| {
        b.iter(|| {
            i += 1;
            workloads::map_get(black_box(i))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("keyed_get_threads");
    for n in [1, 2] {
        group.bench_function(format!("{n} thread(s) at once"), |b| {
            b.iter_custom(|iters| threads::on_threads(n, iters, workloads::keyed_get))
        });
    }
    group.finish();
}

fn writes(c: &mut Criterion) {
    workloads::fill_thread();
    let mut i = 0;
    let mut group = c.benchmark_group("keyed_set_replace");
    group.bench_function("hijack_tls::set", |b| {
        b.iter(|| {
            i += 1;
            workloads::keyed_set(black_box(i))
        })
    });
    group.bench_function("RefCell<HashMap>", |b| {
        b.iter(|| {
            i += 1;
            workloads::map_set(black_box(i))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("keyed_del_then_set");
    group.bench_function("hijack_tls::del+set", |b| {
        b.iter(|| {
            i += 1;
            workloads::keyed_del_set(black_box(i))
        })
    });
    group.bench_function("RefCell<HashMap>", |b| {
        b.iter(|| {
            i += 1;
            workloads::map_del_set(black_box(i))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("fill_16_then_reset");
    group.bench_function("hijack_tls::set+reset", |b| b.iter(workloads::keyed_fill_reset));
    group.bench_function("RefCell<HashMap>", |b| b.iter(workloads::map_fill_clear));
    group.finish();
}

fn id(c: &mut Criterion) {
    workloads::fill_thread();
    let mut group = c.benchmark_group("thread_id");
    group.bench_function("hijack_tls::id", |b| b.iter(workloads::id));
    group.bench_function("std::thread::current().id()", |b| b.iter(workloads::std_thread_id));
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! { name = benches; config = quick(); targets = get, writes, id }
criterion_main!(benches);

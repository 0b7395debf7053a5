//! Per-thread costs: first use on a fresh thread (record, arming, exit sequence)
//! against a plain spawn+join, and the exit sequence with N handlers.

mod workloads;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use workloads::{cpus, threads};

fn first_use(c: &mut Criterion) {
    let mut group = c.benchmark_group("first_use");
    group.bench_function("spawn+join", |b| b.iter(threads::spawn_join));
    group.bench_function("spawn+set+at_exit+join", |b| b.iter(threads::spawn_first_use));
    group.finish();
    // The same with the parent and its children on one CPU: one mode instead of a
    // mixture (see `cpus::on_one_cpu`).
    let bound = cpus::on_one_cpu(|| {
        let mut group = c.benchmark_group("first_use_one_cpu");
        group.bench_function("spawn+join", |b| b.iter(threads::spawn_join));
        group.bench_function("spawn+set+at_exit+join", |b| b.iter(threads::spawn_first_use));
        group.finish();
    });
    if bound.is_none() {
        eprintln!("first_use_one_cpu: could not bind to one CPU; skipped");
    }
}

fn exit_handlers(c: &mut Criterion) {
    let mut group = c.benchmark_group("exit_sequence");
    for n in [0, 16, 256] {
        group.bench_with_input(BenchmarkId::new("spawn+id+N at_exit+join", n), &n, |b, &n| {
            b.iter(|| threads::spawn_handlers(n))
        });
    }
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! { name = benches; config = quick(); targets = first_use, exit_handlers }
criterion_main!(benches);

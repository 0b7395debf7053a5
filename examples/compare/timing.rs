//! Paired timing: the crate's operation and its baseline measured in alternating
//! batches, so drift on a noisy machine hits both sides alike.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// A side of a comparison: runs `iters` operations and returns how long they took.
pub trait Batch: FnMut(u64) -> Duration {}
impl<F: FnMut(u64) -> Duration> Batch for F {}

/// A batch that calls `op(i)` for `i` in `0..iters`, keeping every result alive.
pub fn looped<R>(mut op: impl FnMut(usize) -> R) -> impl Batch {
    move |iters| {
        let start = Instant::now();
        for i in 0..iters {
            black_box(op(black_box(i as usize)));
        }
        start.elapsed()
    }
}

/// How long one batch should take, and how many batches each side runs.
#[derive(Clone, Copy)]
pub struct Plan {
    /// Target length of one batch.
    pub batch: Duration,
    /// Batches per side.
    pub rounds: usize,
}

/// For nanosecond operations.
pub const MICRO: Plan = Plan { batch: Duration::from_millis(2), rounds: 31 };
/// For batches that start threads.
pub const THREADS: Plan = Plan { batch: Duration::from_millis(25), rounds: 15 };

/// Medians of a paired measurement, in ns per operation.
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    /// The crate's side.
    pub ours: f64,
    /// The baseline.
    pub base: f64,
    /// Median of the per-round ratios ours / base.
    pub ratio: f64,
}

/// Measures `ours` against `base`: each side's batch size is calibrated, then the
/// sides alternate (which one goes first alternates too) for `plan.rounds` rounds.
pub fn pair(plan: Plan, mut ours: impl Batch, mut base: impl Batch) -> Pair {
    let n_ours = calibrate(&mut ours, plan.batch);
    let n_base = calibrate(&mut base, plan.batch);
    let (mut o, mut b, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..plan.rounds {
        let (x, y) = if round % 2 == 0 {
            let x = per_op(&mut ours, n_ours);
            (x, per_op(&mut base, n_base))
        } else {
            let y = per_op(&mut base, n_base);
            (per_op(&mut ours, n_ours), y)
        };
        o.push(x);
        b.push(y);
        r.push(x / y);
    }
    Pair { ours: median(o), base: median(b), ratio: median(r) }
}

/// A pair measured in the same rounds as a control pair.
#[derive(Clone, Copy, Debug)]
pub struct Controlled {
    /// The pair under test.
    pub pair: Pair,
    /// The control pair.
    pub control: Pair,
    /// Median of the per-round ratios of the two pairs' ratios: what the pair's
    /// ratio is beyond the control's, with whatever moved both in a round (the
    /// host's placement of the vCPUs, say) divided out.
    pub relative: f64,
}

/// Measures `ours` against `base` and `control_ours` against `control_base`, the
/// four batches back to back in every round (in reverse order every other round).
pub fn pair_with_control(
    plan: Plan,
    mut ours: impl Batch,
    mut base: impl Batch,
    mut control_ours: impl Batch,
    mut control_base: impl Batch,
) -> Controlled {
    let n = [
        calibrate(&mut ours, plan.batch),
        calibrate(&mut base, plan.batch),
        calibrate(&mut control_ours, plan.batch),
        calibrate(&mut control_base, plan.batch),
    ];
    let mut times: [Vec<f64>; 4] = Default::default();
    let mut relative = Vec::new();
    for round in 0..plan.rounds {
        let mut t = [0.0; 4];
        let mut run = |side: usize| {
            t[side] = match side {
                0 => per_op(&mut ours, n[0]),
                1 => per_op(&mut base, n[1]),
                2 => per_op(&mut control_ours, n[2]),
                _ => per_op(&mut control_base, n[3]),
            }
        };
        if round % 2 == 0 {
            (0..4).for_each(&mut run);
        } else {
            (0..4).rev().for_each(&mut run);
        }
        for (side, time) in t.iter().enumerate() {
            times[side].push(*time);
        }
        relative.push((t[0] / t[1]) / (t[2] / t[3]));
    }
    let ratio = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| x / y).collect());
    let pair = |a: usize, b: usize| Pair {
        ours: median(times[a].clone()),
        base: median(times[b].clone()),
        ratio: ratio(&times[a], &times[b]),
    };
    Controlled { pair: pair(0, 1), control: pair(2, 3), relative: median(relative) }
}

/// Spawns timed together in one sample of [`each`].
pub const RUN: usize = 4;

/// Measures `ours` against `base` in runs of [`RUN`] operations, the sides
/// alternating (which goes first alternates too), `samples` runs each after a short
/// warm-up. For operations of tens of µs (spawning a thread), whose long batches a
/// few multi-ms outliers would dominate: this compares medians of short runs, and
/// the ratio is the ratio of the medians.
///
/// Runs, not single operations: back-to-back spawn+join on this kernel alternates
/// slow and fast (about 50 and 35 µs here, whatever the thread does), so medians of
/// single spawns landed between the two modes and swung by ±10% with the order of
/// the sides. A run of an even number of spawns holds as many of each.
pub fn each(samples: usize, mut ours: impl FnMut(), mut base: impl FnMut()) -> Pair {
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..RUN {
            f();
        }
        start.elapsed().as_nanos() as f64 / RUN as f64
    };
    for _ in 0..samples / 10 {
        time(&mut ours);
        time(&mut base);
    }
    let (mut o, mut b) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for round in 0..samples {
        if round % 2 == 0 {
            o.push(time(&mut ours));
            b.push(time(&mut base));
        } else {
            b.push(time(&mut base));
            o.push(time(&mut ours));
        }
    }
    let (ours, base) = (median(o), median(b));
    Pair { ours, base, ratio: ours / base }
}

fn per_op(side: &mut impl Batch, iters: u64) -> f64 {
    side(iters).as_nanos() as f64 / iters as f64
}

/// Iterations that take about `batch` (after a warm-up batch).
fn calibrate(side: &mut impl Batch, batch: Duration) -> u64 {
    let mut iters = 1;
    loop {
        let took = side(iters);
        if took >= batch / 4 || iters >= 1 << 40 {
            let scale = batch.as_secs_f64() / took.as_secs_f64().max(1e-9);
            return ((iters as f64 * scale) as u64).max(1);
        }
        iters *= 4;
    }
}

/// The median of `values` (the upper one for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

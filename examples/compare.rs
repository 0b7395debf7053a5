//! Prints one table: every row of the performance targets measured in this one run,
//! each as ns/op (or bytes) next to the alternative a user would pick instead, with
//! the ratio and the target. `cargo run --release --example compare`.
//!
//! Two rows come from child runs of this program: the fallback (`HIJACK_TLS=off` is
//! read once per process) and the memory rows (glibc's malloc cache off, so
//! `mallinfo2` counts freed chunks as free).

#[path = "compare/machine.rs"]
mod machine;
#[path = "compare/memory.rs"]
mod memory;
#[path = "compare/timing.rs"]
mod timing;
#[path = "../benches/workloads/mod.rs"]
mod workloads;

use std::process::Command;
use std::thread;
use std::time::Instant;

use timing::{MICRO, Pair, THREADS, each, looped, pair};
use workloads::{Alternatives, threads};

/// Runs of [`timing::RUN`] spawns per side for the rows that start a thread per
/// operation.
const SPAWNS: usize = 500;

/// Threads whose first `id()` is timed, for the cold rows.
const FIRSTS: usize = 400;

/// The keyed baseline.
const MAP: &str = "`thread_local!` `RefCell<HashMap<&str, Box<dyn Any>>>`";

/// What a row must reach.
#[derive(Clone, Copy)]
enum Target {
    /// Ratio at most this.
    AtMost(f64),
    /// Ratio below 1.
    Faster,
    /// Reported only.
    None,
    /// Not judged: the run could not show what the row is about.
    Unproven,
}

/// Overlap of the two threads' loops below which a 2-thread row is not judged: the
/// threads are bound to distinct CPUs, so less means one of them mostly ran alone
/// (a vCPU the host did not run).
const MIN_OVERLAP: f64 = 0.5;

/// One line of the table.
struct Row {
    what: &'static str,
    ours: String,
    baseline: &'static str,
    base: String,
    ratio: Option<f64>,
    target: Target,
}

impl Row {
    fn timed(what: &'static str, baseline: &'static str, p: Pair, target: Target) -> Self {
        Self { what, ours: ns(p.ours), baseline, base: ns(p.base), ratio: Some(p.ratio), target }
    }

    fn ratio(what: &'static str, ratio: f64, target: Target) -> Self {
        Self {
            what,
            ours: String::new(),
            baseline: "",
            base: String::new(),
            ratio: Some(ratio),
            target,
        }
    }

    fn print(&self) {
        let ratio = self.ratio.map_or("—".to_owned(), |r| format!("{r:.2}×"));
        let (target, met) = match (self.target, self.ratio) {
            (Target::AtMost(limit), Some(r)) => (format!("≤ {limit:.2}×"), ok(r <= limit)),
            (Target::Faster, Some(r)) => ("< 1×".to_owned(), ok(r < 1.0)),
            (Target::Unproven, _) => {
                ("≤ 1.10×".to_owned(), "not judged: the threads mostly ran apart")
            }
            _ => ("—".to_owned(), ""),
        };
        println!(
            "| {} | {} | {} | {} | {ratio} | {target} | {met} |",
            self.what, self.ours, self.baseline, self.base
        );
    }
}

fn ok(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

fn ns(value: f64) -> String {
    match value {
        v if v >= 10_000.0 => format!("{:.1} µs", v / 1000.0),
        v if v >= 1_000.0 => format!("{:.2} µs", v / 1000.0),
        v => format!("{v:.2} ns"),
    }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("--child-fallback") => return child_fallback(),
        Some("--child-memory") => {
            let [a, b, c, d] = memory::measure();
            return println!("{a} {b} {c} {d}");
        }
        _ => {}
    }
    let started = Instant::now();
    // Before anything else: the process's first record pays the one-time costs.
    let process_first = thread::spawn(first_id_ns).join().expect("thread");
    let mut rows = Vec::new();
    hot_paths(&mut rows);
    per_thread(&mut rows, process_first);
    memory_rows(&mut rows);

    println!("hijack-tls compare: {}", machine::describe());
    println!("main thread: {:?}", hijack_tls::status());
    println!();
    println!("| operation | hijack-tls | baseline | baseline value | ratio | target | met |");
    println!("|---|---|---|---|---|---|---|");
    for row in &rows {
        row.print();
    }
    println!();
    println!(
        "ns/op: medians of {} interleaved batches per side, ratio = median of the per-batch \
         ratios; spawn rows: medians of {SPAWNS} alternating runs of {} spawns (\"all on \
         one CPU\": the parent and its children bound to the parent's CPU); 2-thread rows: \
         CPU time per thread, the threads bound to distinct CPUs, judged on their ratio over \
         the control's measured in the same rounds. Measured in {:.1} s.",
        MICRO.rounds,
        timing::RUN,
        started.elapsed().as_secs_f64()
    );
}

fn hot_paths(rows: &mut Vec<Row>) {
    let alt = Alternatives::new();
    alt.fill();
    workloads::fill_thread();
    let cell = "`thread_local!` const `Cell<u64>`";
    let key_get = || looped(|_| workloads::typed_get());
    let cell_get = || looped(|_| workloads::cell_get());
    let p = pair(MICRO, looped(|_| workloads::typed_get_value()), cell_get());
    rows.push(Row::timed("`Key<u64>::get` as `u64`", cell, p, Target::AtMost(1.5)));
    let p = pair(MICRO, looped(|_| workloads::typed_with_value()), cell_get());
    rows.push(Row::timed("`Key<u64>::with` as `u64`", cell, p, Target::AtMost(1.5)));
    let p = pair(MICRO, key_get(), cell_get());
    rows.push(Row::timed("  the same, `get` kept as `Option`", cell, p, Target::None));
    let p = pair(MICRO, key_get(), looped(|_| alt.thread_local_get()));
    rows.push(Row::timed(
        "`Key<u64>::get`",
        "`ThreadLocal::get` (thread_local 1.1)",
        p,
        Target::Faster,
    ));
    let p = pair(MICRO, key_get(), looped(|_| alt.pthread_get()));
    rows.push(Row::timed("`Key<u64>::get`", "`pthread_getspecific`", p, Target::Faster));
    let p = pair(MICRO, looped(workloads::keyed_get), looped(workloads::map_get));
    rows.push(Row::timed("keyed `get` (16 keys)", MAP, p, Target::AtMost(1.0)));
    let on = |n, op| move |iters| threads::on_threads(n, iters, op);
    threads::take_overlap();
    let measured = timing::pair_with_control(
        THREADS,
        on(2, workloads::keyed_get),
        on(1, workloads::keyed_get),
        on(2, workloads::map_get),
        on(1, workloads::map_get),
    );
    let overlap = threads::take_overlap().unwrap_or(0.0);
    let one = "the same on 1 thread";
    rows.push(Row::timed("keyed `get`, 2 threads at once", one, measured.pair, Target::None));
    // The control shares nothing either: what slows it down on 2 threads (the host
    // running the two vCPUs on one core's hyperthreads, say) is not sharing.
    rows.push(Row::timed("  control: map lookup, 2 threads", one, measured.control, Target::None));
    // Threads that mostly ran apart cannot show sharing: such a run proves
    // nothing, and says so instead of "yes".
    let target = if overlap >= MIN_OVERLAP { Target::AtMost(1.1) } else { Target::Unproven };
    rows.push(Row::ratio(
        "  keyed's 2-thread ratio over the control's, round by round",
        measured.relative,
        target,
    ));
    rows.push(Row::note(
        "  time the two threads' loops ran at once",
        format!("{:.0}%", overlap * 100.0),
    ));
    let shared = workloads::shared_counter;
    let p = pair(THREADS, on(2, shared), on(1, shared));
    rows.push(Row::timed("  control: one shared `AtomicU64`, 2 threads", one, p, Target::None));
    let p = pair(
        MICRO,
        looped(|i| workloads::typed_set(i as u64)),
        looped(|i| workloads::cell_set(i as u64)),
    );
    rows.push(Row::timed("`Key<u64>::set` (replace)", "`Cell::replace`", p, Target::None));
    let p = pair(MICRO, looped(workloads::keyed_set), looped(workloads::map_set));
    rows.push(Row::timed("keyed `set` (replace)", "map insert", p, Target::None));
    let p = pair(MICRO, looped(workloads::keyed_del_set), looped(workloads::map_del_set));
    rows.push(Row::timed("`del` + `set`", "map remove + insert", p, Target::None));
    let p = pair(
        MICRO,
        looped(|_| workloads::keyed_fill_reset()),
        looped(|_| workloads::map_fill_clear()),
    );
    rows.push(Row::timed("16 `set` + `reset`", "16 inserts + `clear`", p, Target::None));
    let p = pair(MICRO, looped(|_| workloads::id()), looped(|_| workloads::std_thread_id()));
    rows.push(Row::timed("`id()`", "`thread::current().id()`", p, Target::None));
}

fn per_thread(rows: &mut Vec<Row>, process_first: f64) {
    let spawn_join = "spawn + join";
    let p = each(SPAWNS, threads::spawn_first_use, threads::spawn_join);
    rows.push(Row::timed("spawn + `set` + `at_exit` + join", spawn_join, p, Target::AtMost(1.05)));
    let pinned =
        workloads::cpus::on_one_cpu(|| each(SPAWNS, threads::spawn_first_use, threads::spawn_join));
    if let Some(p) = pinned {
        rows.push(Row::timed("  the same, all on one CPU", spawn_join, p, Target::AtMost(1.05)));
    }
    let fallback = child(&["--child-fallback"], &[("HIJACK_TLS", "off")]);
    if let [ours, base, ratio, _first] = fallback[..] {
        let p = Pair { ours, base, ratio };
        rows.push(Row::timed(
            "the same, `HIJACK_TLS=off` (child run)",
            spawn_join,
            p,
            Target::None,
        ));
    }
    let n = 256;
    let p = each(SPAWNS / 2, || threads::spawn_handlers(n), || threads::spawn_handlers(0));
    rows.push(Row::timed("exit sequence, 256 handlers", "spawn + `id` + join", p, Target::None));
    let per_handler = (p.ours - p.base) / n as f64;
    rows.push(Row::note("  per handler (register + run)", ns(per_handler)));
    let first = timing::median(
        (0..FIRSTS).map(|_| thread::spawn(first_id_ns).join().expect("thread")).collect(),
    );
    rows.push(Row::note("cold: first `id()` on a fresh thread (walk + patch + record)", ns(first)));
    if let [.., first_fallback] = fallback[..] {
        rows.push(Row::note(
            "cold: the same, `HIJACK_TLS=off` (record + TLS destructor)",
            ns(first_fallback),
        ));
        rows.push(Row::note("cold: walk + patch (difference)", ns(first - first_fallback)));
    }
    let new_site = timing::median(
        NEW_CALL_SITES.iter().map(|&site| thread::spawn(site).join().expect("thread")).collect(),
    );
    rows.push(Row::note(
        "cold: first `id()` from a call site the walk has not seen (one frame's rules from `.eh_frame`)",
        ns(new_site),
    ));
    let reloaded: Vec<f64> = (0..RELOADS)
        .map_while(|_| {
            reload_a_library().then(|| thread::spawn(first_id_ns).join().expect("thread"))
        })
        .collect();
    if reloaded.len() == RELOADS {
        rows.push(Row::note(
            "cold: first `id()` after a `dlopen` + `dlclose` (no recipe valid: rows from the row cache)",
            ns(timing::median(reloaded)),
        ));
    }
    rows.push(Row::note(
        "cold: first `id()` in the process (+ FDE/GDB registration)",
        ns(process_first),
    ));
}

/// Threads timed after [`reload_a_library`].
const RELOADS: usize = 64;

/// Loads and unloads a library this process does not otherwise use (glibc's
/// `libanl`, a stub since 2.34), which moves the loader's generation and so makes
/// every cached recipe stale. Returns whether both calls succeeded.
fn reload_a_library() -> bool {
    // SAFETY: dlopen with a NUL-terminated name; the library runs no code of
    // interest, and the handle is closed right after.
    let handle =
        unsafe { libc::dlopen(c"libanl.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    // SAFETY: a non-null handle from dlopen, closed once.
    !handle.is_null() && unsafe { libc::dlclose(handle) } == 0
}

fn memory_rows(rows: &mut Vec<Row>) {
    let values = child(&["--child-memory"], &[memory::NO_TCACHE]);
    let [record, keyed, map, typed] = values[..] else { return };
    let bytes = |b: f64| format!("{b:.0} B");
    rows.push(Row {
        what: "heap per thread, no values",
        ours: bytes(record),
        baseline: "budget",
        base: "256 B".to_owned(),
        ratio: Some(record / 256.0),
        target: Target::AtMost(1.0),
    });
    rows.push(Row {
        what: "heap per keyed value (1,024 `&str` → `u64`)",
        ours: bytes(keyed),
        baseline: MAP,
        base: bytes(map),
        ratio: Some(keyed / map),
        target: Target::None,
    });
    rows.push(Row::note("heap per `Key<u64>` value (1,024 keys)", bytes(typed)));
}

impl Row {
    fn note(what: &'static str, ours: String) -> Self {
        Self { what, ours, baseline: "", base: String::new(), ratio: None, target: Target::None }
    }
}

/// ns of the first `id()` on this thread.
fn first_id_ns() -> f64 {
    let start = Instant::now();
    hijack_tls::id();
    start.elapsed().as_nanos() as f64
}

/// [`first_id_ns`] in a function of its own for each `N`: each instantiation is new
/// code, so the first walk through it computes that frame's rules from `.eh_frame`
/// instead of finding them in the row cache (the thread's other frames are cached).
#[inline(never)]
fn first_id_ns_at<const N: usize>() -> f64 {
    let start = Instant::now();
    hijack_tls::id();
    let elapsed = start.elapsed().as_nanos() as f64;
    std::hint::black_box(N);
    elapsed
}

/// Start routines whose walks each meet one frame the row cache has not seen.
const NEW_CALL_SITES: [fn() -> f64; 16] = [
    first_id_ns_at::<0>,
    first_id_ns_at::<1>,
    first_id_ns_at::<2>,
    first_id_ns_at::<3>,
    first_id_ns_at::<4>,
    first_id_ns_at::<5>,
    first_id_ns_at::<6>,
    first_id_ns_at::<7>,
    first_id_ns_at::<8>,
    first_id_ns_at::<9>,
    first_id_ns_at::<10>,
    first_id_ns_at::<11>,
    first_id_ns_at::<12>,
    first_id_ns_at::<13>,
    first_id_ns_at::<14>,
    first_id_ns_at::<15>,
];

/// Runs this program again with `args` and `env`, and parses the numbers it prints.
fn child(args: &[&str], env: &[(&str, &str)]) -> Vec<f64> {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe).args(args).envs(env.iter().copied()).output().expect("child run");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().filter_map(|w| w.parse().ok()).collect()
}

/// In a `HIJACK_TLS=off` child: spawn+first use against spawn+join, and first `id()`.
fn child_fallback() {
    let p = each(SPAWNS, threads::spawn_first_use, threads::spawn_join);
    let first = timing::median(
        (0..FIRSTS).map(|_| thread::spawn(first_id_ns).join().expect("thread")).collect(),
    );
    println!("{} {} {} {first}", p.ours, p.base, p.ratio);
}

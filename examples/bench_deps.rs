//! Speed of the dependency graph (docs/decisions.md, "Dependencies and cycles"): build + cycles + readiness
//! of every task, once per tick. Run in release:
//!
//!     cargo run --release --example bench_deps
//!
//! Scenarios: 5,000 tasks with a realistic dependency mix, a 100,000-task
//! chain and a 100,000-task cycle. Prints the best and median of several
//! runs. No assertions on time: targets live in docs/performance.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use reconcile::core::deps::{DepGraph, Readiness};
use reconcile::core::task::{Dependency, Task};

const RUNS: usize = 15;

/// A small deterministic generator (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn task(id: i64, stage: &str, deps: Vec<Dependency>) -> Task {
    Task {
        id,
        stage: stage.to_string(),
        work_item_id: Some(format!("ET-{id}")),
        depends_on: deps,
        ..Task::default()
    }
}

fn dep(id: i64, stage: Option<&str>) -> Dependency {
    Dependency {
        id,
        work_item_id: Some(format!("ET-{id}")),
        stage: stage.map(str::to_string),
    }
}

const STAGES: [&str; 5] = [
    "architecture",
    "development",
    "testing",
    "review",
    "deploying",
];

/// 5,000 tasks: about half with no dependency, the rest with 1–4 —
/// mostly on earlier listed tasks (not done), some on finished tasks that
/// are no longer listed (entry stage done), a few on unknown ids without a
/// stage (fail open) — plus 20 small cycles (2–5 members) and a
/// self-loop.
fn realistic() -> Vec<Task> {
    let mut rng = Lcg(42);
    let n = 5_000i64;
    let mut tasks: Vec<Task> = (1..=n)
        .map(|id| {
            let stage = STAGES[rng.below(STAGES.len() as u64) as usize];
            let k = match rng.below(10) {
                0..=4 => 0,
                5..=7 => 1,
                8 => 2,
                _ => 2 + rng.below(3),
            };
            let deps = (0..k)
                .map(|_| match rng.below(10) {
                    0..=5 if id > 1 => {
                        dep(1 + rng.below(id as u64 - 1) as i64, Some("development"))
                    }
                    0..=7 => dep(100_000 + rng.below(50_000) as i64, Some("done")),
                    8 => dep(id + 1 + rng.below(50) as i64, None),
                    _ => dep(900_000 + rng.below(1_000) as i64, None),
                })
                .collect();
            task(id, stage, deps)
        })
        .collect();
    // 20 cycles among existing tasks: a ring of 2–5 members each.
    for c in 0..20 {
        let len = 2 + (c % 4) as usize;
        let ring: Vec<i64> = (0..len).map(|_| 1 + rng.below(n as u64) as i64).collect();
        for (i, &a) in ring.iter().enumerate() {
            let b = ring[(i + 1) % len];
            tasks[a as usize - 1]
                .depends_on
                .push(dep(b, Some("testing")));
        }
    }
    let s = 1 + rng.below(n as u64) as i64;
    tasks[s as usize - 1]
        .depends_on
        .push(dep(s, Some("testing")));
    tasks
}

fn chain(n: i64) -> Vec<Task> {
    (1..=n)
        .map(|i| {
            let deps = if i == 1 {
                vec![]
            } else {
                vec![dep(i - 1, Some("development"))]
            };
            task(i, "development", deps)
        })
        .collect()
}

fn ring(n: i64) -> Vec<Task> {
    (1..=n)
        .map(|i| task(i, "development", vec![dep(i % n + 1, Some("development"))]))
        .collect()
}

/// One tick's worth: build, every cycle rendered, readiness of every task.
fn tick(tasks: &[Task]) -> (usize, usize, usize) {
    let g = DepGraph::build(tasks);
    let rendered: usize = g.cycles().iter().map(|c| g.render(c).len()).sum();
    let mut waiting = 0;
    for t in tasks {
        if !matches!(g.readiness(t.id), Readiness::Ready) {
            waiting += 1;
        }
    }
    black_box(rendered);
    (g.cycles().len(), waiting, g.warnings().len())
}

fn measure(name: &str, tasks: &[Task]) {
    let deps: usize = tasks.iter().map(|t| t.depends_on.len()).sum();
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut shape = (0, 0, 0);
    for _ in 0..RUNS {
        let start = Instant::now();
        shape = black_box(tick(black_box(tasks)));
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "{name:<16} tasks={:<7} deps={:<7} cycles={:<3} not_ready={:<7} warnings={:<4} best={:>8.2?} median={:>8.2?}",
        tasks.len(),
        deps,
        shape.0,
        shape.1,
        shape.2,
        times[0],
        times[RUNS / 2],
    );
}

fn main() {
    println!("bench_deps: build + cycles (rendered) + readiness of every task; {RUNS} runs each");
    measure("realistic 5k", &realistic());
    measure("chain 100k", &chain(100_000));
    measure("cycle 100k", &ring(100_000));
}

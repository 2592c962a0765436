//! The dependency graph, row by row.
use super::*;
use crate::core::task::Dependency;

/// A task in `stage` depending on `deps`: (id, the entry's stage).
fn task(id: i64, stage: &str, deps: &[(i64, Option<&str>)]) -> Task {
    Task {
        id,
        stage: stage.into(),
        work_item_id: Some(format!("ET-{id}")),
        depends_on: deps
            .iter()
            .map(|&(d, s)| Dependency {
                id: d,
                work_item_id: Some(format!("ET-{d}")),
                stage: s.map(str::to_string),
            })
            .collect(),
        ..Task::default()
    }
}

const DEV: Option<&str> = Some("development");
const DONE_: Option<&str> = Some("done");

#[test]
fn ready_when_every_dep_is_done() {
    let g = DepGraph::build(&[
        task(1, "testing", &[(2, DONE_), (3, DONE_)]),
        task(4, "testing", &[]),
    ]);
    assert_eq!(g.readiness(1), Readiness::Ready);
    assert_eq!(g.readiness(4), Readiness::Ready);
    assert!(g.cycles().is_empty());
    assert!(g.warnings().is_empty());
}

#[test]
fn waiting_on_one_of_two() {
    let g = DepGraph::build(&[
        task(1, "testing", &[(2, DONE_), (3, DEV)]),
        task(3, "development", &[]),
    ]);
    assert_eq!(g.readiness(1), Readiness::Waiting { on: vec![3] });
    assert_eq!(g.readiness(3), Readiness::Ready);
    assert!(g.cycles().is_empty());
}

#[test]
fn done_dependency_does_not_block() {
    // Listed but done, judged by the entry's stage and by the list.
    let g = DepGraph::build(&[
        task(1, "testing", &[(2, DONE_), (3, None)]),
        task(2, "done", &[]),
        task(3, "done", &[(1, DEV)]),
    ]);
    assert_eq!(g.readiness(1), Readiness::Ready);
    assert_eq!(
        g.readiness(3),
        Readiness::Ready,
        "a done task waits on nothing"
    );
    assert!(g.cycles().is_empty(), "done tasks are not in the graph");
}

#[test]
fn entry_without_stage_uses_the_listed_task() {
    let g = DepGraph::build(&[task(1, "testing", &[(2, None)]), task(2, "review", &[])]);
    assert_eq!(g.readiness(1), Readiness::Waiting { on: vec![2] });
    assert!(g.warnings().is_empty());
}

#[test]
fn unknown_dependency_fails_open_with_a_warning() {
    let g = DepGraph::build(&[task(1, "testing", &[(99, None)])]);
    assert_eq!(g.readiness(1), Readiness::Ready);
    assert_eq!(g.warnings().len(), 1);
    let w = &g.warnings()[0];
    assert!(w.contains("ET-1") && w.contains("99"), "{w}");
}

#[test]
fn unlisted_dependency_is_judged_by_its_entry() {
    let g = DepGraph::build(&[task(1, "testing", &[(50, DEV), (51, DONE_)])]);
    assert_eq!(g.readiness(1), Readiness::Waiting { on: vec![50] });
    assert!(g.warnings().is_empty());
    assert!(g.cycles().is_empty());
}

#[test]
fn unknown_task_is_ready() {
    let g = DepGraph::build(&[]);
    assert_eq!(g.readiness(7), Readiness::Ready);
    assert!(g.cycles().is_empty());
}

#[test]
fn two_cycle() {
    let g = DepGraph::build(&[
        task(5, "testing", &[(3, DEV)]),
        task(3, "development", &[(5, Some("testing"))]),
    ]);
    assert_eq!(g.cycles().len(), 1);
    let c = &g.cycles()[0];
    assert_eq!(c.members, vec![3, 5]);
    assert_eq!(c.path, vec![3, 5]);
    assert_eq!(c.key, "3,5");
    assert!(c.extra().is_empty());
    assert_eq!(g.render(c), "ET-3 → ET-5 → ET-3");
    assert_eq!(g.readiness(3), Readiness::Cycle { component: 0 });
    assert_eq!(g.readiness(5), Readiness::Cycle { component: 0 });
}

#[test]
fn three_cycle_in_dependency_order_from_smallest() {
    // 9 → 3 → 5 → 9 (each depends on the next).
    let g = DepGraph::build(&[
        task(9, "testing", &[(3, DEV)]),
        task(5, "testing", &[(9, DEV)]),
        task(3, "development", &[(5, DEV)]),
    ]);
    let c = &g.cycles()[0];
    assert_eq!(g.cycles().len(), 1);
    assert_eq!(c.members, vec![3, 5, 9]);
    assert_eq!(c.path, vec![3, 5, 9]);
    assert_eq!(c.key, "3,5,9");
    assert_eq!(g.render(c), "ET-3 → ET-5 → ET-9 → ET-3");
}

#[test]
fn self_loop() {
    let g = DepGraph::build(&[task(4, "testing", &[(4, DEV)]), task(6, "testing", &[])]);
    assert_eq!(g.cycles().len(), 1);
    let c = &g.cycles()[0];
    assert_eq!(c.members, vec![4]);
    assert_eq!(c.path, vec![4]);
    assert_eq!(c.key, "4");
    assert_eq!(g.render(c), "ET-4 → ET-4");
    assert_eq!(g.readiness(4), Readiness::Cycle { component: 0 });
    assert_eq!(g.readiness(6), Readiness::Ready);
}

#[test]
fn two_disjoint_cycles() {
    let g = DepGraph::build(&[
        task(20, "testing", &[(21, DEV)]),
        task(21, "testing", &[(20, DEV)]),
        task(1, "testing", &[(2, DEV)]),
        task(2, "testing", &[(1, DEV)]),
    ]);
    let keys: Vec<&str> = g.cycles().iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, vec!["1,2", "20,21"]);
    assert_eq!(g.readiness(2), Readiness::Cycle { component: 0 });
    assert_eq!(g.readiness(21), Readiness::Cycle { component: 1 });
}

#[test]
fn tail_hanging_off_a_cycle_is_waiting() {
    // 1 ⇄ 2 is the cycle; 7 depends on 1 but is not on the cycle.
    let g = DepGraph::build(&[
        task(1, "testing", &[(2, DEV)]),
        task(2, "testing", &[(1, DEV)]),
        task(7, "testing", &[(1, DEV)]),
    ]);
    assert_eq!(g.cycles().len(), 1);
    assert_eq!(g.cycles()[0].members, vec![1, 2]);
    assert_eq!(g.readiness(7), Readiness::Waiting { on: vec![1] });
    assert_eq!(g.readiness(1), Readiness::Cycle { component: 0 });
}

#[test]
fn extra_members_off_the_simple_cycle_are_listed() {
    // Component {1,2,3,4}: 1 → 2 → 1 is the shortest cycle through 1;
    // 2 → 3 → 4 → 1 closes the rest.
    let g = DepGraph::build(&[
        task(1, "testing", &[(2, DEV)]),
        task(2, "testing", &[(1, DEV), (3, DEV)]),
        task(3, "testing", &[(4, DEV)]),
        task(4, "testing", &[(1, DEV)]),
    ]);
    let c = &g.cycles()[0];
    assert_eq!(c.members, vec![1, 2, 3, 4]);
    assert_eq!(c.path, vec![1, 2]);
    assert_eq!(c.extra(), vec![3, 4]);
    assert_eq!(g.render(c), "ET-1 → ET-2 → ET-1 (+ ET-3, ET-4)");
}

#[test]
fn path_follows_real_edges_to_the_start() {
    // 1 → 5 → 2 → 1, and 1 → 3 (3 → 5): shortest way back via 5.
    let g = DepGraph::build(&[
        task(1, "testing", &[(3, DEV), (5, DEV)]),
        task(2, "testing", &[(1, DEV)]),
        task(3, "testing", &[(5, DEV)]),
        task(5, "testing", &[(2, DEV)]),
    ]);
    let c = &g.cycles()[0];
    assert_eq!(c.members, vec![1, 2, 3, 5]);
    assert_eq!(c.path, vec![1, 5, 2]);
    assert_cycle_is_real(&g, c);
}

#[test]
fn labels_fall_back_to_the_task_id() {
    let mut a = task(1, "testing", &[(2, DEV)]);
    a.work_item_id = None;
    let mut b = task(2, "testing", &[(1, DEV)]);
    b.work_item_id = Some(String::new());
    let g = DepGraph::build(&[a, b]);
    assert_eq!(g.render(&g.cycles()[0]), "1 → 2 → 1");
    assert_eq!(render(&[], &[], |i| i.to_string()), "");
    assert_eq!(render(&[], &[4], |i| i.to_string()), "(+ 4)");
}

#[test]
fn repeated_task_ids_keep_the_first() {
    let g = DepGraph::build(&[
        task(1, "testing", &[(2, DEV)]),
        task(1, "testing", &[]),
        task(2, "testing", &[]),
    ]);
    assert_eq!(g.readiness(1), Readiness::Waiting { on: vec![2] });
    assert_eq!(g.warnings().len(), 1);
}

#[test]
fn waiting_ids_are_sorted_and_unique() {
    let g = DepGraph::build(&[task(1, "testing", &[(9, DEV), (4, DEV), (9, DEV)])]);
    assert_eq!(g.readiness(1), Readiness::Waiting { on: vec![4, 9] });
}

fn assert_cycle_is_real(g: &DepGraph, c: &Cycle) {
    let mut seen = std::collections::HashSet::new();
    for (k, &id) in c.path.iter().enumerate() {
        assert!(seen.insert(id), "simple: {id} repeats");
        let next = c.path[(k + 1) % c.path.len()];
        let slot = &g.slots[g.by_id[&id]];
        assert!(
            slot.waiting.contains(&next),
            "{id} does not depend on {next}"
        );
    }
    assert_eq!(c.path.first(), c.members.first());
}

mod oracle {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Up to 8 tasks (ids 1..=8, some done), each with up to 4
    /// dependencies on ids 1..=10 (9 and 10 are never listed), the
    /// entry's stage absent, done or not done.
    fn lists() -> impl Strategy<Value = Vec<Task>> {
        let dep = (1i64..=10, 0u8..3);
        let t = (any::<bool>(), proptest::collection::vec(dep, 0..4));
        proptest::collection::vec(t, 0..8).prop_map(|ts| {
            ts.into_iter()
                .enumerate()
                .map(|(i, (done, deps))| {
                    let deps: Vec<(i64, Option<&str>)> = deps
                        .into_iter()
                        .map(|(d, s)| (d, [None, DONE_, DEV][s as usize]))
                        .collect();
                    task(i as i64 + 1, if done { "done" } else { "testing" }, &deps)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn agrees_with_brute_force(tasks in lists()) {
            let g = DepGraph::build(&tasks);
            let stage: BTreeMap<i64, &str> =
                tasks.iter().map(|t| (t.id, t.stage.as_str())).collect();
            // Edges by the module's rules, written out plainly.
            let mut edges: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
            for t in tasks.iter().filter(|t| t.stage != "done") {
                let e = edges.entry(t.id).or_default();
                for d in &t.depends_on {
                    let s = d.stage.as_deref().or(stage.get(&d.id).copied());
                    if s.is_some_and(|s| s != "done")
                        && stage.get(&d.id).is_some_and(|&s| s != "done")
                    {
                        e.insert(d.id);
                    }
                }
            }
            let reach = |from: i64| {
                let mut seen = BTreeSet::new();
                let mut todo = vec![from];
                while let Some(v) = todo.pop() {
                    for &w in edges.get(&v).into_iter().flatten() {
                        if seen.insert(w) {
                            todo.push(w);
                        }
                    }
                }
                seen
            };
            let on_cycle: BTreeSet<i64> =
                edges.keys().copied().filter(|&v| reach(v).contains(&v)).collect();
            let members: BTreeSet<i64> =
                g.cycles().iter().flat_map(|c| c.members.clone()).collect();
            prop_assert_eq!(&members, &on_cycle);
            for (k, c) in g.cycles().iter().enumerate() {
                let first = c.members[0];
                let rf = reach(first);
                for &m in &c.members {
                    prop_assert!(rf.contains(&m) && reach(m).contains(&first));
                    prop_assert_eq!(g.readiness(m), Readiness::Cycle { component: k });
                }
                prop_assert_eq!(c.path[0], first);
                let mut seen = BTreeSet::new();
                for (i, &v) in c.path.iter().enumerate() {
                    prop_assert!(seen.insert(v));
                    let next = c.path[(i + 1) % c.path.len()];
                    prop_assert!(edges[&v].contains(&next));
                }
            }
            for t in &tasks {
                if !on_cycle.contains(&t.id) {
                    let in_cycle = matches!(g.readiness(t.id), Readiness::Cycle { .. });
                    prop_assert!(!in_cycle);
                }
            }
        }
    }
}

const BIG: i64 = 100_000;

/// Run `f` on a thread with a small stack: recursion over 100,000
/// nodes would overflow it.
fn small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no overflow, no panic");
}

#[test]
fn chain_of_100k_needs_no_recursion() {
    small_stack(|| {
        // i depends on i - 1; task 1 depends on nothing.
        let tasks: Vec<Task> = (1..=BIG)
            .map(|i| {
                let deps: &[(i64, Option<&str>)] = if i == 1 { &[] } else { &[(i - 1, DEV)] };
                task(i, "development", deps)
            })
            .collect();
        let g = DepGraph::build(&tasks);
        assert!(g.cycles().is_empty());
        assert_eq!(g.readiness(1), Readiness::Ready);
        assert_eq!(g.readiness(BIG), Readiness::Waiting { on: vec![BIG - 1] });
    });
}

#[test]
fn cycle_of_100k_needs_no_recursion() {
    small_stack(|| {
        // i depends on i + 1; the last depends on 1.
        let tasks: Vec<Task> = (1..=BIG)
            .map(|i| task(i, "development", &[(i % BIG + 1, DEV)]))
            .collect();
        let g = DepGraph::build(&tasks);
        assert_eq!(g.cycles().len(), 1);
        let c = &g.cycles()[0];
        assert_eq!(c.members.len(), BIG as usize);
        assert_eq!(c.path.len(), BIG as usize);
        assert_eq!(c.path[..3], [1, 2, 3]);
        assert_cycle_is_real(&g, c);
        assert_eq!(g.readiness(BIG), Readiness::Cycle { component: 0 });
    });
}

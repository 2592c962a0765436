//! Task dependencies and cycles (docs/decisions.md, gate pass row 11 and
//! "Dependencies and cycles"): the original reconciler's Guard 3 (`is_task_ready` / `detect_cycle`) and the cycle backstop
//! (`find_any_cycle`), computed once per tick. Pure: the task list of one
//! tick in, readiness and cycles out; no I/O, no panics on any input.
//!
//! The graph: one node per task in the list whose own stage is not `done`;
//! an edge `task → dep` for each `depends_on` entry that is not done and
//! whose id is itself a node. Whether an entry is done is judged by the
//! entry's own `stage`; an entry without a stage falls back to the stage of
//! the listed task with that id; an entry with neither does not block (fail
//! open) and yields a warning.
//!
//! Cycles are the strongly connected components with more than one member,
//! or a single node with a self-loop, found with an iterative Tarjan (an
//! explicit stack: a 100,000-task chain or cycle cannot overflow the
//! thread's stack). Everything is O(tasks + dependency entries) per tick;
//! [`DepGraph::readiness`] is O(deps of that task).

use std::collections::HashMap;

use crate::core::task::Task;

/// The stage that means "finished" for a dependency.
const DONE: &str = "done";

/// Guard 3's verdict for one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Every dependency is done (unknown ones fail open).
    Ready,
    /// Some dependencies are not done: their ids, ascending, without
    /// repeats.
    Waiting { on: Vec<i64> },
    /// The task is itself a member of a cycle: the index of its component
    /// in [`DepGraph::cycles`].
    Cycle { component: usize },
}

/// One cycle component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// Every member task id of the strongly connected component, ascending.
    pub members: Vec<i64>,
    /// One simple cycle in dependency order (each id depends on the next,
    /// the last on the first), starting at the smallest member. The start
    /// is NOT repeated at the end; a self-loop is `[id]`.
    pub path: Vec<i64>,
    /// The sorted member ids joined with "," (e.g. "3,5,9"): the
    /// component's identity for the sidecar's alert de-dup.
    pub key: String,
}

impl Cycle {
    /// Members of the component that are not on [`Cycle::path`], ascending.
    pub fn extra(&self) -> Vec<i64> {
        let mut on_path = self.path.clone();
        on_path.sort_unstable();
        self.members
            .iter()
            .copied()
            .filter(|m| on_path.binary_search(m).is_err())
            .collect()
    }
}

/// Render a cycle for `{cycle}`: the path with its start repeated at the
/// end, joined by " → ", then the other members of the component, if any,
/// as " (+ A, B)". E.g. "ET-1 → ET-2 → ET-1 (+ ET-4)". An empty path
/// renders as the extras alone (never happens for a real [`Cycle`]).
pub fn render(path: &[i64], extra: &[i64], label: impl Fn(i64) -> String) -> String {
    let mut parts: Vec<String> = path.iter().map(|&id| label(id)).collect();
    if let Some(&start) = path.first() {
        parts.push(label(start));
    }
    let mut out = parts.join(" → ");
    if !extra.is_empty() {
        let extra: Vec<String> = extra.iter().map(|&id| label(id)).collect();
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str("(+ ");
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

/// One task of the list, as the graph keeps it. Slots are sorted by id, so
/// comparing slot indices is comparing task ids.
#[derive(Debug, Clone)]
struct Slot {
    id: i64,
    label: String,
    done: bool,
    /// Blocking dependency ids, ascending, without repeats.
    waiting: Vec<i64>,
    /// The cycle component this task belongs to, if any.
    cycle: Option<usize>,
}

/// The dependency graph of one tick: built once, serves both Guard 3 (per
/// task) and the cycle backstop (all components).
#[derive(Debug, Clone, Default)]
pub struct DepGraph {
    slots: Vec<Slot>,
    by_id: HashMap<i64, usize>,
    cycles: Vec<Cycle>,
    warnings: Vec<String>,
}

impl DepGraph {
    /// Build the graph over the task list of one tick and find its cycles.
    /// A task id listed twice keeps its first occurrence (with a warning).
    pub fn build(tasks: &[Task]) -> DepGraph {
        let mut warnings = Vec::new();

        // Slots: the listed tasks, first occurrence of each id, by id.
        let mut by_id: HashMap<i64, usize> = HashMap::with_capacity(tasks.len());
        let mut firsts: Vec<&Task> = Vec::with_capacity(tasks.len());
        for t in tasks {
            if by_id.contains_key(&t.id) {
                warnings.push(format!(
                    "task {} is listed more than once; the first entry is used",
                    t.id
                ));
                continue;
            }
            by_id.insert(t.id, firsts.len());
            firsts.push(t);
        }
        firsts.sort_by_key(|t| t.id);
        for (i, t) in firsts.iter().enumerate() {
            by_id.insert(t.id, i);
        }

        // Edges (CSR: offsets into targets) and the waiting lists.
        let n = firsts.len();
        let mut offsets: Vec<usize> = Vec::with_capacity(n + 1);
        let mut targets: Vec<usize> = Vec::new();
        let mut slots: Vec<Slot> = Vec::with_capacity(n);
        offsets.push(0);
        for t in &firsts {
            let done = t.stage == DONE;
            let mut waiting = Vec::new();
            let edges_from = targets.len();
            if !done {
                for dep in &t.depends_on {
                    let listed = by_id.get(&dep.id).copied();
                    let entry_stage = dep.stage.as_deref().filter(|s| !s.is_empty());
                    let stage = entry_stage.or_else(|| listed.map(|i| firsts[i].stage.as_str()));
                    let Some(stage) = stage else {
                        warnings.push(format!(
                            "task {}: dependency {} is not in the task list and has no \
                             stage; not blocking (fail open)",
                            label_of(t),
                            dep.id
                        ));
                        continue;
                    };
                    if stage == DONE {
                        continue;
                    }
                    waiting.push(dep.id);
                    if let Some(i) = listed.filter(|&i| firsts[i].stage != DONE) {
                        targets.push(i);
                    }
                }
            }
            waiting.sort_unstable();
            waiting.dedup();
            targets[edges_from..].sort_unstable();
            let kept = dedup_tail(&mut targets, edges_from);
            targets.truncate(kept);
            offsets.push(targets.len());
            slots.push(Slot {
                id: t.id,
                label: label_of(t),
                done,
                waiting,
                cycle: None,
            });
        }

        let adj = Csr { offsets, targets };
        let mut cycles = Vec::new();
        for component in tarjan(&adj) {
            let cyclic = component.len() > 1 || {
                let v = component[0];
                adj.succ(v).binary_search(&v).is_ok()
            };
            if !cyclic {
                continue;
            }
            let path = simple_cycle(&adj, &component);
            cycles.push((component, path));
        }
        // Deterministic order: by smallest member id.
        cycles.sort_by_key(|(members, _)| members[0]);
        let cycles = cycles
            .into_iter()
            .enumerate()
            .map(|(c, (members, path))| {
                for &m in &members {
                    slots[m].cycle = Some(c);
                }
                let members: Vec<i64> = members.iter().map(|&m| slots[m].id).collect();
                let key = members
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                Cycle {
                    path: path.iter().map(|&v| slots[v].id).collect(),
                    members,
                    key,
                }
            })
            .collect();

        DepGraph {
            slots,
            by_id,
            cycles,
            warnings,
        }
    }

    /// Guard 3 for one task. A task that is not in the list, or is itself
    /// done, is `Ready` (nothing to wait for; fail open).
    pub fn readiness(&self, task_id: i64) -> Readiness {
        let Some(slot) = self.by_id.get(&task_id).map(|&i| &self.slots[i]) else {
            return Readiness::Ready;
        };
        if let Some(component) = slot.cycle {
            return Readiness::Cycle { component };
        }
        if slot.done || slot.waiting.is_empty() {
            Readiness::Ready
        } else {
            Readiness::Waiting {
                on: slot.waiting.clone(),
            }
        }
    }

    /// Every cycle component, ordered by smallest member id.
    pub fn cycles(&self) -> &[Cycle] {
        &self.cycles
    }

    /// Warnings found while building: repeated task ids (in list order),
    /// then unknown dependencies (in task-id order).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How a task is named in messages: its work item id when present and
    /// non-empty, else its task id.
    pub fn label(&self, task_id: i64) -> String {
        match self.by_id.get(&task_id) {
            Some(&i) => self.slots[i].label.clone(),
            None => task_id.to_string(),
        }
    }

    /// [`render`] with this graph's labels.
    pub fn render(&self, cycle: &Cycle) -> String {
        render(&cycle.path, &cycle.extra(), |id| self.label(id))
    }
}

fn label_of(t: &Task) -> String {
    match t.work_item() {
        Some(w) => w.to_string(),
        None => t.id.to_string(),
    }
}

/// Remove consecutive repeats from `v[from..]` in place; returns the new
/// length of `v`.
fn dedup_tail(v: &mut [usize], from: usize) -> usize {
    let mut w = from;
    for r in from..v.len() {
        if w == from || v[w - 1] != v[r] {
            v[w] = v[r];
            w += 1;
        }
    }
    w
}

/// Adjacency in compressed form: the successors of `v` are
/// `targets[offsets[v]..offsets[v + 1]]`, ascending.
struct Csr {
    offsets: Vec<usize>,
    targets: Vec<usize>,
}

impl Csr {
    fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    fn succ(&self, v: usize) -> &[usize] {
        &self.targets[self.offsets[v]..self.offsets[v + 1]]
    }
}

/// Tarjan's strongly connected components, iterative. Each component's
/// members come back ascending.
fn tarjan(g: &Csr) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = g.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    // (node, position of the next successor to look at)
    let mut calls: Vec<(usize, usize)> = Vec::new();
    let mut next = 0usize;
    let mut out = Vec::new();

    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        calls.push((root, g.offsets[root]));

        while let Some(&mut (v, ref mut pos)) = calls.last_mut() {
            if *pos < g.offsets[v + 1] {
                let w = g.targets[*pos];
                *pos += 1;
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, g.offsets[w]));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                component.sort_unstable();
                out.push(component);
            }
        }
    }
    out
}

/// One simple cycle through the smallest member of a strongly connected
/// component, in dependency order, without repeating the start: the
/// shortest way from the start back to itself inside the component, each
/// hop going to the smallest id among the successors that are closest to
/// the start. Shortest ⇒ simple (each hop is one step closer).
fn simple_cycle(g: &Csr, component: &[usize]) -> Vec<usize> {
    let Some(&start) = component.first() else {
        return Vec::new();
    };
    if g.succ(start).binary_search(&start).is_ok() {
        return vec![start];
    }
    // Distances to `start` within the component: BFS over reversed edges.
    let local: HashMap<usize, usize> = component.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); component.len()];
    for (i, &v) in component.iter().enumerate() {
        for w in g.succ(v) {
            if let Some(&j) = local.get(w) {
                preds[j].push(i);
            }
        }
    }
    let mut dist = vec![usize::MAX; component.len()];
    dist[0] = 0;
    let mut queue = std::collections::VecDeque::from([0usize]);
    while let Some(j) = queue.pop_front() {
        for &i in &preds[j] {
            if dist[i] == usize::MAX {
                dist[i] = dist[j] + 1;
                queue.push_back(i);
            }
        }
    }

    let mut path = vec![start];
    let mut cur = 0usize;
    // The cycle has at most `component.len()` nodes; the bound keeps the
    // walk finite whatever happens.
    for _ in 0..component.len() {
        // Successors ascend, so the first with the minimal distance is the
        // smallest id among the closest.
        let hop = g
            .succ(component[cur])
            .iter()
            .filter_map(|w| local.get(w).copied())
            .filter(|&i| dist[i] != usize::MAX)
            .min_by_key(|&i| dist[i]);
        match hop {
            Some(0) | None => break,
            Some(i) => {
                path.push(component[i]);
                cur = i;
            }
        }
    }
    path
}

#[cfg(test)]
mod tests;

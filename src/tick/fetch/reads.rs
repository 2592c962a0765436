//! The tick's Plane reads, in the background: each project's reads run on
//! a thread of their own, at most `[plane] concurrency` at once, while the
//! passes decide the units whose projects are back; a slow or endless
//! project holds only its own units (docs/reliability.md, hostile
//! conditions). The scheduler (the fair order, the budget check) and the
//! sidecar stay on the tick's thread: a job is started, and what came back
//! is stored, only when a pass pumps.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Fetched, Job, Kept, Known, Resync, fetch, fetch_states, take};
use crate::config::Config;
use crate::core::gate::Unresolved;
use crate::tick::schedule::{Plan, StatesAge, fits};
use crate::tick::{Blind, Tick};

/// How long a wait for a read blocks before it looks at the deadline, the
/// stop signal and the queue again.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// The same while queued jobs wait for Plane's first answer (`dispatch`):
/// it comes on a worker's thread, with no message for the tick's.
const FIRST_ANSWER_SLICE: Duration = Duration::from_millis(5);

/// How long the first job runs alone waiting for Plane's first answer:
/// past it the others start with the budget unknown. A project whose
/// first request hangs (its sync the oldest, so first every tick) must
/// not hold every other project's reads until the deadline.
const FIRST_ANSWER_PATIENCE: Duration = Duration::from_secs(1);

/// The read jobs of one tick: those queued in the fair order, those
/// running (or back and not stored yet), and the channel results come
/// back on.
pub(crate) struct Jobs {
    workers: usize,
    reserve: i64,
    resync: Resync,
    pending: VecDeque<Queued>,
    /// Projects whose reads started with stale cached states: each may be
    /// refreshed once from what the reads leave over.
    stale_read: Vec<String>,
    /// At most `workers`: a job's result counts until it is stored (a
    /// read's slimmed into its view), so no more than `workers` listings
    /// are held at once (20,000 raw issues would dominate a tick's memory).
    in_flight: Vec<InFlight>,
    /// When the job now in flight alone started (`FIRST_ANSWER_PATIENCE`).
    alone_since: Option<Instant>,
    tx: Sender<Fetched>,
    rx: Receiver<Fetched>,
}

/// A queued job: a project's reads, or a refresh of its stale states
/// (queued after the reads of the same call, oldest states first).
enum Queued {
    Read(Plan),
    Refresh(String),
}

struct InFlight {
    pid: String,
    /// A states refresh alone (the project's read is another job).
    refresh: bool,
    /// The requests the job was expected to cost.
    cost: u64,
    /// The requests sent so far, as the budget counted them
    /// (`Plane::sent`).
    sent: Arc<AtomicU64>,
    worker: JoinHandle<()>,
}

impl Jobs {
    pub fn new(cfg: &Config) -> Jobs {
        let (tx, rx) = channel();
        Jobs {
            workers: cfg.plane.concurrency.max(1) as usize,
            reserve: i64::from(cfg.plane.rate_reserve),
            resync: Resync::of(cfg),
            pending: VecDeque::new(),
            stale_read: Vec::new(),
            alone_since: None,
            in_flight: Vec::new(),
            tx,
            rx,
        }
    }

    /// Plans in the fair order, then the refreshes of stale states; each
    /// call's after the earlier ones'.
    pub(super) fn queue(&mut self, plans: Vec<Plan>, refreshes: Vec<String>) {
        self.pending.extend(plans.into_iter().map(Queued::Read));
        self.pending
            .extend(refreshes.into_iter().map(Queued::Refresh));
    }

    /// What the jobs in flight may still spend (read inside
    /// `Plane::budget_with`, to agree with the budget).
    fn committed(&self) -> u64 {
        self.in_flight
            .iter()
            .map(|r| r.cost.saturating_sub(r.sent.load(Ordering::Relaxed)))
            .sum()
    }

    fn take_in_flight(&mut self, pid: &str, refresh: bool) -> Option<InFlight> {
        let at = self
            .in_flight
            .iter()
            .position(|r| r.pid == pid && r.refresh == refresh)?;
        Some(self.in_flight.remove(at))
    }
}

impl Tick<'_> {
    /// Stores the jobs that came back and starts the next ones while a
    /// worker is free and their cost fits. Never blocks.
    pub(in crate::tick) fn pump_reads(&mut self) -> anyhow::Result<()> {
        while let Ok(f) = self.reads.jobs.rx.try_recv() {
            self.arrived(f)?;
        }
        self.dispatch()
    }

    /// Blocks until a job comes back (it is stored and the next ones
    /// start), the time for actions is over or a stop signal came. False
    /// when nothing came back.
    pub(in crate::tick) fn await_read(&mut self) -> anyhow::Result<bool> {
        self.pump_reads()?;
        // After a pump, a queued job means the workers are busy or wait
        // for Plane's first answer.
        while !self.reads.jobs.in_flight.is_empty() && !self.clock.past_deadline() {
            let slice = self
                .clock
                .act_until
                .saturating_duration_since(Instant::now())
                .min(self.wait_slice());
            match self.reads.jobs.rx.recv_timeout(slice) {
                Ok(f) => {
                    self.arrived(f)?;
                    self.pump_reads()?;
                    return Ok(true);
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.reap()? {
                        self.pump_reads()?;
                        return Ok(true);
                    }
                    // Plane may have answered for the first time: the
                    // queued jobs may start now.
                    self.dispatch()?;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(false)
    }

    /// Waits until none of `pids` is being read, or the time for actions
    /// is over.
    pub(in crate::tick) fn await_reads(&mut self, pids: &[&str]) -> anyhow::Result<()> {
        self.pump_reads()?;
        while pids.iter().any(|p| self.reads.awaits(p)) {
            if !self.await_read()? {
                break;
            }
        }
        Ok(())
    }

    /// After the passes: the queued jobs are started (or, past the time
    /// for reads, not reached) and every running one is waited for (the
    /// deadline clips it) and stored. The reads the passes needed are back
    /// already; what is left is mostly the refreshes of stale states.
    /// After a stop signal no read is waited for: a hung peer would hold
    /// the exit for its timeout, and a read only refreshes the mirror. Its
    /// thread ends with the process; nothing of it is stored.
    pub(in crate::tick) fn finish_reads(&mut self) -> anyhow::Result<()> {
        self.pump_reads()?;
        while !self.reads.jobs.in_flight.is_empty() && !crate::signals::stop_requested() {
            match self.reads.jobs.rx.recv_timeout(self.wait_slice()) {
                Ok(f) => self.arrived(f)?,
                Err(RecvTimeoutError::Timeout) => {
                    self.reap()?;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.dispatch()?;
        }
        Ok(())
    }

    fn wait_slice(&self) -> Duration {
        if !self.reads.jobs.pending.is_empty() && self.alone_for_first_answer() {
            FIRST_ANSWER_SLICE
        } else {
            WAIT_SLICE
        }
    }

    /// Whether the job in flight runs alone for Plane's first answer,
    /// which tells the budget exactly (docs/plane.md): for a second at
    /// most.
    fn alone_for_first_answer(&self) -> bool {
        let jobs = &self.reads.jobs;
        !jobs.in_flight.is_empty()
            && self.peers.plane.awaits_first_answer()
            && jobs
                .alone_since
                .is_some_and(|t| t.elapsed() < FIRST_ANSWER_PATIENCE)
    }

    /// One job came back: stored (live) and, for a read, kept as the
    /// project's view.
    fn arrived(&mut self, f: Fetched) -> anyhow::Result<()> {
        if let Some(r) = self
            .reads
            .jobs
            .take_in_flight(&f.project.plane_project_id, f.refresh)
        {
            // Sending was its last act: the thread is ending.
            let _ = r.worker.join();
        }
        let kept = take(f, &mut self.store, self.cfg, self.clock.now)?;
        self.reads.record(kept, self.clock.now);
        Ok(())
    }

    /// A worker that ended without an answer (a bug; nothing in a read
    /// panics on purpose) fails its project's read instead of holding the
    /// tick. True when one did.
    fn reap(&mut self) -> anyhow::Result<bool> {
        let ended: Vec<(String, bool)> = self
            .reads
            .jobs
            .in_flight
            .iter()
            .filter(|r| r.worker.is_finished())
            .map(|r| (r.pid.clone(), r.refresh))
            .collect();
        if ended.is_empty() {
            return Ok(false);
        }
        // A result sent before its thread ended is in the channel now.
        while let Ok(f) = self.reads.jobs.rx.try_recv() {
            self.arrived(f)?;
        }
        for (pid, refresh) in ended {
            if self.reads.jobs.take_in_flight(&pid, refresh).is_some() && !refresh {
                let blind = Blind::new(
                    Unresolved::ReadFailed,
                    "not read: its reader ended without an answer".into(),
                );
                self.reads.record(unread(pid, blind), self.clock.now);
            }
        }
        Ok(true)
    }

    /// Starts the queued jobs in order while a worker is free. A read
    /// that does not fit the budget is not started (a later, cheaper one
    /// may be); the refreshes of stale states stop at the first that does
    /// not fit; nothing starts once the time for reads is over.
    fn dispatch(&mut self) -> anyhow::Result<()> {
        while self.reads.jobs.in_flight.len() < self.reads.jobs.workers {
            // Plane's window is full while a call waits out its 429: a
            // read started now would only spend another 429.
            if self.alone_for_first_answer() || self.peers.plane.waiting_out_429() {
                break;
            }
            let Some(queued) = self.reads.jobs.pending.pop_front() else {
                break;
            };
            // Plane's client stops at `act_until` too: a read started
            // later could not send a request.
            let late = self.clock.past_deadline();
            let (job, pid, cost, refresh) = match queued {
                Queued::Read(plan) => {
                    let pid = plan.project.plane_project_id.clone();
                    if late {
                        self.reads
                            .record(unread(pid, Blind::not_reached()), self.clock.now);
                        continue;
                    }
                    if let Err(blind) = self.fits(plan.cost) {
                        self.reads.record(unread(pid, blind), self.clock.now);
                        continue;
                    }
                    let (states, mirror) = match self.store.reader() {
                        Some(s) => (
                            s.cached_states(&pid)?
                                .filter(|_| plan.states != StatesAge::Expired),
                            s.mirror(&pid)?,
                        ),
                        None => (None, None),
                    };
                    if plan.states == StatesAge::Stale {
                        self.reads.jobs.stale_read.push(pid.clone());
                    }
                    let known = Known {
                        project: plan.project,
                        states,
                        mirror,
                    };
                    (Job::Read(known), pid, plan.cost, false)
                }
                Queued::Refresh(pid) => {
                    let Some(at) = self.reads.jobs.stale_read.iter().position(|p| *p == pid) else {
                        continue;
                    };
                    let pid = self.reads.jobs.stale_read.swap_remove(at);
                    if late || self.fits(1).is_err() {
                        // What the reads left over is spent: no later
                        // refresh of this queue starts.
                        while let Some(Queued::Refresh(_)) = self.reads.jobs.pending.front() {
                            self.reads.jobs.pending.pop_front();
                        }
                        continue;
                    }
                    let config = self.cfg;
                    let Some(project) = config.projects.iter().find(|p| p.plane_project_id == pid)
                    else {
                        continue;
                    };
                    (Job::States(project.clone()), pid, 1, true)
                }
            };
            let (plane, counter) = self.peers.plane.counting();
            let sent = plane.sent();
            let (tx, resync, now) = (
                self.reads.jobs.tx.clone(),
                self.reads.jobs.resync,
                self.clock.now,
            );
            let worker = std::thread::Builder::new()
                .name("plane-read".into())
                .spawn(move || {
                    let fetched = match job {
                        Job::Read(known) => fetch((&plane, &counter), resync, known, now),
                        Job::States(project) => fetch_states((&plane, &counter), project),
                    };
                    let _ = tx.send(fetched);
                });
            match worker {
                Ok(worker) => {
                    if self.reads.jobs.in_flight.is_empty() {
                        self.reads.jobs.alone_since = Some(Instant::now());
                    }
                    self.reads.jobs.in_flight.push(InFlight {
                        pid,
                        refresh,
                        cost,
                        sent,
                        worker,
                    });
                }
                Err(e) if refresh => log::debug!("states of {pid} not refreshed: no thread: {e}"),
                Err(e) => {
                    let blind = Blind::new(
                        Unresolved::ReadFailed,
                        format!("not read: no thread to read it on: {e}"),
                    );
                    self.reads.record(unread(pid, blind), self.clock.now);
                }
            }
        }
        Ok(())
    }

    /// Whether a job costing `cost` requests fits above the reserve, with
    /// what the jobs in flight may still spend.
    fn fits(&self, cost: u64) -> Result<(), Blind> {
        let (remaining, committed) = self.peers.plane.budget_with(|| self.reads.jobs.committed());
        fits(
            cost,
            remaining,
            self.reads.jobs.reserve,
            committed,
            self.peers.plane.limited(),
        )
    }
}

/// A project not read, and why.
fn unread(pid: String, blind: Blind) -> Kept {
    Kept {
        pid,
        view: Some(Err(blind)),
        requests: 0,
    }
}

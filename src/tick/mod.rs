//! One tick: lock, the requested passes, delivery, the sidecar record and
//! the report. The decisions live in `gate` (and `plane_pass`); this module
//! is the imperative shell that fetches facts and carries out verdicts.

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::config::Config;
use crate::core::plane::ListedTasks;
use crate::peers::http::{Client, Peer};
use crate::peers::orchestrator::Orchestrator;
use crate::peers::plane::Plane;
use crate::peers::telegram::Telegram;
use crate::store::{self, Handle as Store, Sidecar, SidecarReader, TickLock};

mod announce;
mod clock;
mod cycles;
mod fetch;
mod gate;
mod intents;
pub mod notify;
pub mod outcome;
mod plane;
mod schedule;

use outcome::{CycleReport, GatePass, Notifications, PlanePass, Requests, TickOutcome};

use announce::{Dedup, Slot};
use clock::Clock;
use fetch::{Blind, PlaneReads, ProjectView};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Gate,
    Plane,
    All,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Gate => "gate",
            Command::Plane => "plane",
            Command::All => "all",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub command: Command,
    pub dry_run: bool,
    pub wait_lock: Duration,
}

/// One tick's working state. What it runs with (configuration, options,
/// clock, sidecar, peers), what it learns (the Plane reads, the listed
/// tasks), and what it has done so far, which later units depend on (the
/// action cap, the de-dup memory, the open intent, the queued messages,
/// the PATCHes, the deadline's cuts). The passes decide through `core`;
/// the outcome is built from their results (docs/architecture.md).
struct Tick<'a> {
    cfg: &'a Config,
    opts: &'a Options,
    clock: Clock,
    store: Store,
    peers: Peers,
    /// The Plane reads: queued, running and what they brought back.
    reads: PlaneReads,
    /// The task list by Plane issue, for the no-op memo (docs/plane.md):
    /// the gate pass's in `all`.
    listed: Option<ListedTasks>,
    cap: ActionCap,
    dedup: Dedup,
    /// The intent the next recorded unblock resolves (docs/reliability.md).
    resolving: Option<String>,
    /// The outbox rows queued this tick and the unit each announces, so
    /// that delivery results reach the units they belong to.
    queued: Vec<(i64, Slot)>,
    /// Issues moved to Blocked this tick: never PATCHed twice.
    patched: std::collections::HashSet<String>,
    cut: Cut,
}

/// The peers this tick talks to, each through a client that counts its
/// requests (for the report) and gives up at the tick's deadline.
struct Peers {
    orchestrator: Orchestrator,
    plane: Plane,
    /// None without `[telegram]`: nothing is delivered.
    telegram: Option<Telegram>,
}

impl Peers {
    fn new(cfg: &Config, deadline: Instant, act_until: Instant) -> Peers {
        let secrets = cfg.secrets();
        let client =
            |peer, timeout| Client::new(peer, timeout, secrets.clone()).with_deadline(deadline);
        Peers {
            orchestrator: Orchestrator::new(
                &cfg.orchestrator,
                client(Peer::Orchestrator, cfg.orchestrator.timeout),
            ),
            // Plane reads may use all the time actions have: they run in
            // the background and a slow or endless project holds only its
            // own units (docs/reliability.md, hostile conditions); a read
            // ending later could not be acted on.
            plane: Plane::new(
                &cfg.plane,
                Client::new(Peer::Plane, cfg.plane.timeout, secrets.clone())
                    .with_deadline(act_until),
            ),
            telegram: cfg
                .telegram
                .as_ref()
                .map(|t| Telegram::new(t, client(Peer::Telegram, t.timeout))),
        }
    }

    /// What each peer was sent this tick, for the report.
    fn requests(&self) -> Requests {
        Requests {
            orchestrator: self.orchestrator.client().requests(),
            plane: self.plane.client().requests(),
            telegram: self.telegram.as_ref().map_or(0, |t| t.client().requests()),
        }
    }
}

/// What counts against `max_actions` so far (docs/configuration.md).
#[derive(Default)]
struct ActionCap {
    /// Advances that advanced and replays sent (a dry run's would-be ones
    /// too).
    taken: u64,
    /// Actions held for where the action cap stopped the last tick (a
    /// pass's cursor) while its project is still being read: a unit whose
    /// project came back first must not take that turn, tick after tick.
    held: u64,
}

impl ActionCap {
    /// The actions taken and those held: what a decision compares with
    /// the cap.
    fn used(&self) -> u64 {
        self.taken + self.held
    }

    /// Holds an action for a pass's cursor unit while its project is being
    /// read; `holding` is the pass's note of it.
    fn hold(&mut self, holding: &mut bool) {
        self.held += 1;
        *holding = true;
    }

    /// Gives back the action held for a pass's cursor unit, now decided.
    fn release(&mut self, holding: &mut bool) {
        if std::mem::take(holding) {
            self.held -= 1;
        }
    }
}

/// Where the deadline (or a stop signal) cut this tick short: either is
/// the outcome's `cut_by_deadline` (exit 75, `TickOutcome::exit_code`).
#[derive(Default)]
struct Cut {
    /// No unit starts any more: the remaining ones are deferred.
    units: bool,
    /// A project's read was stopped: its units are deferred, while the
    /// other projects' units go on.
    reads: bool,
}

/// Runs one tick. Errors are the ones that stop a tick before it reports:
/// the sidecar (74) and the lock (75).
pub fn run(cfg: &Config, opts: &Options) -> anyhow::Result<TickOutcome> {
    run_at(cfg, opts, OffsetDateTime::now_utc())
}

/// As `run`, with the tick's wall-clock time given: every age, TTL and
/// timestamp of the tick derives from `now` (the benchmark replays a half
/// hour of minute ticks this way). The deadline still runs on the real clock.
pub fn run_at(cfg: &Config, opts: &Options, now: OffsetDateTime) -> anyhow::Result<TickOutcome> {
    let clock = Clock::start(cfg, opts, now);
    let (_lock, store) = open_store(cfg, opts)?;
    let mut tick = Tick::new(cfg, opts, clock, store);

    let (gate, cycles, mut plane) = tick.passes()?;
    tick.finish_reads()?;
    let staleness = tick.reads.finish(&mut plane, tick.clock.now);
    let mut outcome = TickOutcome {
        command: opts.command,
        dry_run: opts.dry_run,
        started_at: now,
        finished_at: now,
        elapsed: Duration::ZERO,
        gate,
        plane,
        cycles,
        notifications: Notifications::default(),
        requests: Requests::default(),
        cut_by_deadline: tick.cut.units || tick.cut.reads,
        delivery_ran: false,
        deduped_keys: std::mem::take(&mut tick.dedup.keys),
        snapshot: store::Snapshot {
            plane_projects_unread: staleness.unread as i64,
            plane_oldest_sync_at: staleness.oldest_sync_at.map(crate::core::timestamp::format),
            ..store::Snapshot::default()
        },
    };
    tick.deliver(&mut outcome)?;
    outcome.requests = tick.peers.requests();
    outcome.elapsed = tick.clock.started.elapsed();
    outcome.finished_at =
        now + time::Duration::try_from(outcome.elapsed).unwrap_or(time::Duration::ZERO);
    match &mut tick.store {
        Store::Live(store) => {
            store.finish_tick(&outcome.record(), outcome.finished_at)?;
            outcome.snapshot = store.snapshot()?.at(now);
        }
        Store::ReadOnly(store) => {
            // A dry run records nothing: its Plane staleness is what it saw.
            let seen = std::mem::take(&mut outcome.snapshot);
            let stored = match store {
                Some(s) => s.snapshot()?,
                None => store::Snapshot::default(),
            };
            outcome.snapshot = store::Snapshot {
                plane_projects_unread: seen.plane_projects_unread,
                plane_oldest_sync_at: seen.plane_oldest_sync_at,
                ..stored
            }
            .at(now);
        }
    }
    Ok(outcome)
}

/// The sidecar as this tick may use it: live under the tick lock, or
/// read-only for a dry run (docs/decisions.md, dry-run).
fn open_store(cfg: &Config, opts: &Options) -> anyhow::Result<(Option<TickLock>, Store)> {
    let path = &cfg.state.path;
    Ok(if opts.dry_run {
        (None, Store::ReadOnly(SidecarReader::open(path)?))
    } else {
        // A stop signal while another tick holds the lock ends the wait.
        let lock = TickLock::acquire_or_stop(path, opts.wait_lock, &crate::signals::stop_requested)
            .map_err(store::LockError::into_anyhow)?;
        (Some(lock), Store::Live(Sidecar::open(path)?))
    })
}

impl<'a> Tick<'a> {
    fn new(cfg: &'a Config, opts: &'a Options, clock: Clock, store: Store) -> Tick<'a> {
        Tick {
            cfg,
            opts,
            peers: Peers::new(cfg, clock.deadline, clock.act_until),
            clock,
            store,
            reads: PlaneReads::new(cfg),
            listed: None,
            cap: ActionCap::default(),
            dedup: Dedup::default(),
            resolving: None,
            queued: Vec::new(),
            patched: std::collections::HashSet::new(),
            cut: Cut::default(),
        }
    }

    /// The requested passes. A unit whose project is still being read
    /// waits aside while the others, of both passes, go on; this blocks
    /// only when nothing else is left (docs/architecture.md).
    /// Whether a pass's set-aside units are worth a look: some wait and a
    /// read ended since the last look (`looked`, then updated), or the
    /// tick is cut (they are deferred), or `all` (nothing is read any
    /// more). Without it 5,000 waiting tasks would each be looked at on
    /// every pump.
    fn set_aside_changed(&self, looked: &mut u64, waiting: bool, all: bool) -> bool {
        let cut = self.cut.units || self.clock.past_deadline();
        if !waiting || (!all && !cut && *looked == self.reads.ended()) {
            return false;
        }
        *looked = self.reads.ended();
        true
    }

    /// Whether a unit set aside for project `pid` still waits: its reads
    /// are queued or running and the time for actions is not over.
    fn still_awaits(&self, pid: &str) -> bool {
        self.reads.awaits(pid) && !self.cut.units && !self.clock.past_deadline()
    }

    fn passes(&mut self) -> anyhow::Result<(GatePass, Vec<CycleReport>, PlanePass)> {
        let command = self.opts.command;
        let mut gate = match command {
            Command::Gate | Command::All => Some(self.gate_begin()?),
            Command::Plane => None,
        };
        let mut gate_done = None;
        // The gate pass ends (its cycle backstop included) once its last
        // task is decided: before the Plane pass starts when none waits.
        if let Some(run) = gate.take_if(|r| !self.gate_waits(r)) {
            gate_done = Some(self.gate_end(run)?);
        }
        let mut plane = match command {
            Command::Plane | Command::All => Some(self.plane_begin()?),
            Command::Gate => None,
        };
        let mut all = false;
        while gate.is_some() || plane.as_ref().is_some_and(|p| p.waiting()) {
            self.pump_reads()?;
            let mut moved = false;
            // The gate pass steps first: in `all` it decides a project's
            // tasks before the Plane pass handles that project.
            if let Some(run) = &mut gate {
                moved |= self.gate_step(run, all)?;
            }
            if let Some(run) = plane.as_mut() {
                moved |= self.plane_step(run, all)?;
            }
            if let Some(run) = gate.take_if(|r| !self.gate_waits(r)) {
                gate_done = Some(self.gate_end(run)?);
            }
            // Nothing is being read any more (it cannot be otherwise when
            // a wait ends early before the deadline): decide what is left.
            all = !moved && !self.await_read()? && !self.clock.past_deadline();
        }
        let (gate, cycles) = gate_done.unwrap_or_else(|| (GatePass::not_requested(), Vec::new()));
        let plane = match plane {
            Some(run) => self.plane_end(run),
            None => PlanePass::not_requested(),
        };
        Ok((gate, cycles, plane))
    }
}

impl Tick<'_> {
    fn cursor(&self, pass: &str) -> anyhow::Result<Option<String>> {
        Ok(match self.store.reader() {
            Some(s) => s.cursor(pass)?,
            None => None,
        })
    }

    /// Whether the units left are deferred: once the time for actions is
    /// over, for the rest of the tick (said once, naming what is deferred).
    fn cut_units(&mut self, what: &str) -> bool {
        if !self.cut.units && self.clock.past_deadline() {
            log::warn!(
                "{}; the remaining {what} are deferred",
                self.clock.cut_reason().cut_message()
            );
            self.cut.units = true;
        }
        self.cut.units
    }
}

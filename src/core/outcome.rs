//! What happened to one unit (a task in the gate pass, an issue in the
//! Plane pass): the outcome and reason codes of docs/decisions.md, exactly
//! as they appear in reports.

/// Why a unit was skipped or deferred. The serialized names are contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Excluded,
    HumanGate,
    TerminalStage,
    NoGate,
    InFlight,
    Young,
    Escalated,
    TerminalState,
    PlaneUnresolved,
    HumanWait,
    WaitingDeps,
    Cycle,
    NoTask,
    ReplayedNoop,
    ActionCap,
    Deadline,
    /// A stop signal (SIGTERM, SIGINT, SIGHUP) ended the tick early.
    Signal,
    RateReserve,
    RateLimited,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Excluded => "excluded",
            Reason::HumanGate => "human_gate",
            Reason::TerminalStage => "terminal_stage",
            Reason::NoGate => "no_gate",
            Reason::InFlight => "in_flight",
            Reason::Young => "young",
            Reason::Escalated => "escalated",
            Reason::TerminalState => "terminal_state",
            Reason::PlaneUnresolved => "plane_unresolved",
            Reason::HumanWait => "human_wait",
            Reason::WaitingDeps => "waiting_deps",
            Reason::Cycle => "cycle",
            Reason::NoTask => "no_task",
            Reason::ReplayedNoop => "replayed_noop",
            Reason::ActionCap => "action_cap",
            Reason::Deadline => "deadline",
            Reason::Signal => "signal",
            Reason::RateReserve => "rate_reserve",
            Reason::RateLimited => "rate_limited",
        }
    }

    /// The log line of a tick cut short for this reason.
    pub fn cut_message(self) -> &'static str {
        match self {
            Reason::Signal => "stopped by a signal",
            _ => "deadline reached",
        }
    }

    /// Terminal skips feed `skipped_terminal_total`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Reason::TerminalStage | Reason::TerminalState)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Skipped,
    Deferred,
    Error,
    // The gate pass
    Advanced,
    GateRed,
    NotAdvanced,
    WouldAdvance,
    // The Plane pass
    Started,
    StartNoop,
    Resumed,
    ResumeNoop,
    VerdictApplied,
    VerdictNoop,
    WouldStart,
    WouldResume,
    WouldApplyVerdict,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Skipped => "skipped",
            Outcome::Deferred => "deferred",
            Outcome::Error => "error",
            Outcome::Advanced => "advanced",
            Outcome::GateRed => "gate_red",
            Outcome::NotAdvanced => "not_advanced",
            Outcome::WouldAdvance => "would_advance",
            Outcome::Started => "started",
            Outcome::StartNoop => "start_noop",
            Outcome::Resumed => "resumed",
            Outcome::ResumeNoop => "resume_noop",
            Outcome::VerdictApplied => "verdict_applied",
            Outcome::VerdictNoop => "verdict_noop",
            Outcome::WouldStart => "would_start",
            Outcome::WouldResume => "would_resume",
            Outcome::WouldApplyVerdict => "would_apply_verdict",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A guard's verdict on a unit before any action: go on, skip or defer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Proceed,
    Skip(Reason),
    Defer(Reason),
}

super::serialize_as_str!(Reason, Outcome);

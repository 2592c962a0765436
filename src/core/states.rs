//! Plane states → the logical keys the passes reason about (docs/decisions.md, state mapping):
//! name folding, explicit `state_names`, aliasing, terminal states and the
//! human-wait skip-set. Pure: states in, a map out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A logical state key: the closed set the passes reason about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKey {
    Backlog,
    Todo,
    ToAnalyse,
    InProgress,
    InReview,
    Review,
    Architecture,
    Development,
    Testing,
    Approved,
    Rejected,
    Blocked,
    NeedsInput,
    AwaitingDeploy,
    Deploying,
    Monitoring,
    Done,
    Cancelled,
}

impl StateKey {
    /// Every logical key, in the order `check` shows them.
    pub const ALL: [StateKey; 18] = [
        StateKey::Backlog,
        StateKey::Todo,
        StateKey::ToAnalyse,
        StateKey::InProgress,
        StateKey::InReview,
        StateKey::Review,
        StateKey::Architecture,
        StateKey::Development,
        StateKey::Testing,
        StateKey::Approved,
        StateKey::Rejected,
        StateKey::Blocked,
        StateKey::NeedsInput,
        StateKey::AwaitingDeploy,
        StateKey::Deploying,
        StateKey::Monitoring,
        StateKey::Done,
        StateKey::Cancelled,
    ];

    /// The key as config files, `check` and the report spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            StateKey::Backlog => "backlog",
            StateKey::Todo => "todo",
            StateKey::ToAnalyse => "to_analyse",
            StateKey::InProgress => "in_progress",
            StateKey::InReview => "in_review",
            StateKey::Review => "review",
            StateKey::Architecture => "architecture",
            StateKey::Development => "development",
            StateKey::Testing => "testing",
            StateKey::Approved => "approved",
            StateKey::Rejected => "rejected",
            StateKey::Blocked => "blocked",
            StateKey::NeedsInput => "needs_input",
            StateKey::AwaitingDeploy => "awaiting_deploy",
            StateKey::Deploying => "deploying",
            StateKey::Monitoring => "monitoring",
            StateKey::Done => "done",
            StateKey::Cancelled => "cancelled",
        }
    }
}

/// Ordered by spelling, as the string keys were, so the order of warnings
/// built from a map of keys stays as it was.
impl Ord for StateKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for StateKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A config key that names no logical state; `Display` is the text after the
/// config section (`"{key}": not a logical state key (one of …)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey(pub String);

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}: not a logical state key (one of {})",
            self.0,
            KEYS.join(", ")
        )
    }
}

impl std::error::Error for UnknownKey {}

impl FromStr for StateKey {
    type Err = UnknownKey;

    fn from_str(s: &str) -> Result<StateKey, UnknownKey> {
        StateKey::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKey(s.to_string()))
    }
}

/// Every logical key's spelling, in `StateKey::ALL` order.
pub const KEYS: [&str; 18] = {
    let mut out = [""; 18];
    let mut i = 0;
    while i < 18 {
        out[i] = StateKey::ALL[i].as_str();
        i += 1;
    }
    out
};

/// A key with no state of its own borrows another's (the original reconciler's defaults).
const ALIASES: [(StateKey, StateKey); 4] = [
    (StateKey::ToAnalyse, StateKey::InProgress),
    (StateKey::AwaitingDeploy, StateKey::InReview),
    (StateKey::Deploying, StateKey::InProgress),
    (StateKey::Monitoring, StateKey::Done),
];

/// Keys whose uuids never count as an active wait (the anti-regress rule).
const BASE_WORKING: [StateKey; 11] = [
    StateKey::Backlog,
    StateKey::Todo,
    StateKey::InProgress,
    StateKey::InReview,
    StateKey::Review,
    StateKey::Architecture,
    StateKey::Development,
    StateKey::Testing,
    StateKey::Approved,
    StateKey::Rejected,
    StateKey::Done,
];

/// One Plane state as `GET states/` returns it (unknown fields ignored).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlaneState {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub sequence: Option<f64>,
}

/// How a key got its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Named in `state_names`.
    Named,
    /// Its own state, matched by folded name.
    Folded,
    /// Borrowed from another key.
    Alias(StateKey),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub uuid: String,
    pub name: String,
    pub source: Source,
}

/// A project's states, resolved to logical keys.
#[derive(Debug, Clone, Default)]
pub struct StateMap {
    keys: BTreeMap<StateKey, Resolved>,
    groups: HashMap<String, String>,
    names: HashMap<String, String>,
    /// Two states folding to one key, named state_names missing, …
    pub warnings: Vec<String>,
}

/// Unicode lowercase with every non-alphanumeric character removed, so
/// "To Do" and "to-do" meet, and Cyrillic names fold as well.
pub fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The logical key a folded state name spells, with the accepted variants.
fn key_for_folded(folded: &str) -> Option<StateKey> {
    let folded = match folded {
        "canceled" => "cancelled",
        "toanalyze" => "toanalyse",
        other => other,
    };
    StateKey::ALL
        .into_iter()
        .find(|k| fold(k.as_str()) == folded)
}

impl StateMap {
    /// Resolves `states` with the effective `state_names` (per project over
    /// global, key by key, already merged by the caller).
    pub fn build(states: &[PlaneState], state_names: &BTreeMap<String, Vec<String>>) -> StateMap {
        let mut map = StateMap::default();
        for s in states {
            if let Some(g) = &s.group {
                map.groups.insert(s.id.clone(), g.clone());
            }
            map.names.insert(s.id.clone(), s.name.clone());
        }

        // Folded matches; lower sequence wins a collision.
        let mut folded: BTreeMap<StateKey, Vec<&PlaneState>> = BTreeMap::new();
        for s in states {
            if let Some(key) = key_for_folded(&fold(&s.name)) {
                folded.entry(key).or_default().push(s);
            }
        }
        for (key, mut candidates) in folded {
            candidates.sort_by(|a, b| {
                let sa = a.sequence.unwrap_or(f64::INFINITY);
                let sb = b.sequence.unwrap_or(f64::INFINITY);
                sa.total_cmp(&sb)
            });
            if candidates.len() > 1 {
                let names: Vec<String> =
                    candidates.iter().map(|s| format!("{:?}", s.name)).collect();
                map.warnings.push(format!(
                    "states {} all fold to `{key}`; using {:?} (lowest sequence)",
                    names.join(", "),
                    candidates[0].name
                ));
            }
            let s = candidates[0];
            map.keys.insert(
                key,
                Resolved {
                    uuid: s.id.clone(),
                    name: s.name.clone(),
                    source: Source::Folded,
                },
            );
        }

        // Explicit names win over folding.
        for (key, wanted) in state_names {
            let Ok(key) = key.parse::<StateKey>() else {
                continue;
            };
            match wanted
                .iter()
                .find_map(|n| states.iter().find(|s| s.name.trim() == n.trim()))
            {
                Some(s) => {
                    map.keys.insert(
                        key,
                        Resolved {
                            uuid: s.id.clone(),
                            name: s.name.clone(),
                            source: Source::Named,
                        },
                    );
                }
                None if !wanted.is_empty() => map.warnings.push(format!(
                    "state_names.{key}: none of {wanted:?} exists; matching by name instead"
                )),
                None => {}
            }
        }

        for (key, target) in ALIASES {
            if map.keys.contains_key(&key) {
                continue;
            }
            if let Some(r) = map.keys.get(&target).cloned() {
                map.keys.insert(
                    key,
                    Resolved {
                        source: Source::Alias(target),
                        ..r
                    },
                );
            }
        }
        map
    }

    /// The state uuid of a logical key, aliases included.
    pub fn uuid(&self, key: StateKey) -> Option<&str> {
        self.keys.get(&key).map(|r| r.uuid.as_str())
    }

    pub fn resolved(&self, key: StateKey) -> Option<&Resolved> {
        self.keys.get(&key)
    }

    /// The name of a state uuid, when it is one of the project's.
    pub fn name_of(&self, uuid: &str) -> Option<&str> {
        self.names.get(uuid).map(String::as_str)
    }

    pub fn group_of(&self, uuid: &str) -> Option<&str> {
        self.groups.get(uuid).map(String::as_str)
    }

    /// Done or cancelled: by the state's group when Plane gave one, else by
    /// the project's done/cancelled keys.
    pub fn is_terminal(&self, uuid: &str) -> bool {
        if uuid.is_empty() {
            return false;
        }
        match self.groups.get(uuid).map(String::as_str) {
            Some(g) if !g.is_empty() => g == "completed" || g == "cancelled",
            _ => {
                self.uuid(StateKey::Done) == Some(uuid)
                    || self.uuid(StateKey::Cancelled) == Some(uuid)
            }
        }
    }

    /// Guard 2: explicit human gates plus the active waits that are states
    /// of their own (an aliased wait never widens the set).
    pub fn skip_set(&self) -> BTreeSet<&str> {
        let base: BTreeSet<&str> = BASE_WORKING.iter().filter_map(|&k| self.uuid(k)).collect();
        let mut set: BTreeSet<&str> = [StateKey::Blocked, StateKey::NeedsInput]
            .into_iter()
            .filter_map(|k| self.uuid(k))
            .collect();
        for k in [
            StateKey::AwaitingDeploy,
            StateKey::Deploying,
            StateKey::Monitoring,
        ] {
            if let Some(u) = self.uuid(k)
                && !base.contains(u)
            {
                set.insert(u);
            }
        }
        set
    }

    pub fn is_human_wait(&self, uuid: &str) -> bool {
        self.skip_set().contains(uuid)
    }
}

/// Per-project `state_names` over the global ones, key by key.
pub fn merge_state_names(
    global: &BTreeMap<String, Vec<String>>,
    project: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Vec<String>> {
    let mut merged = global.clone();
    for (k, v) in project {
        merged.insert(k.clone(), v.clone());
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(id: &str, name: &str, group: &str, seq: f64) -> PlaneState {
        PlaneState {
            id: id.into(),
            name: name.into(),
            group: if group.is_empty() {
                None
            } else {
                Some(group.into())
            },
            sequence: Some(seq),
        }
    }

    /// A project without the active-wait states (the original reconciler's "enduro").
    fn enduro() -> Vec<PlaneState> {
        vec![
            st("u-backlog", "Backlog", "backlog", 1.0),
            st("u-todo", "Todo", "unstarted", 2.0),
            st("u-prog", "In Progress", "started", 3.0),
            st("u-review", "In Review", "started", 4.0),
            st("u-appr", "Approved", "started", 5.0),
            st("u-rej", "Rejected", "started", 6.0),
            st("u-block", "Blocked", "started", 7.0),
            st("u-need", "Needs Input", "started", 8.0),
            st("u-done", "Done", "completed", 9.0),
            st("u-canc", "Canceled", "cancelled", 10.0),
        ]
    }

    fn orchestrator_project() -> Vec<PlaneState> {
        let mut s = enduro();
        s.push(st("u-ta", "To Analyse", "unstarted", 2.5));
        s.push(st("u-await", "Awaiting Deploy", "started", 11.0));
        s.push(st("u-depl", "Deploying", "started", 12.0));
        s.push(st("u-mon", "Monitoring", "started", 13.0));
        s
    }

    #[test]
    fn state_keys_spell_as_before_in_check_order() {
        assert_eq!(StateKey::ALL.len(), KEYS.len());
        for (k, s) in StateKey::ALL.into_iter().zip(KEYS) {
            assert_eq!(k.as_str(), s);
            assert_eq!(k.to_string(), s);
            assert_eq!(s.parse::<StateKey>(), Ok(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{s}\""));
            assert_eq!(
                serde_json::from_str::<StateKey>(&format!("\"{s}\"")).unwrap(),
                k
            );
        }
        assert_eq!(KEYS[0], "backlog");
        assert_eq!(KEYS[17], "cancelled");
        let err = "frozen".parse::<StateKey>().unwrap_err().to_string();
        assert!(
            err.starts_with("\"frozen\": not a logical state key (one of backlog, todo, "),
            "{err}"
        );
        assert!(err.ends_with("done, cancelled)"), "{err}");
    }

    #[test]
    fn fold_removes_punctuation_and_case_unicode_aware() {
        assert_eq!(fold("To Do"), "todo");
        assert_eq!(fold("Needs-Input"), "needsinput");
        assert_eq!(fold("  В работе! "), "вработе");
    }

    #[test]
    fn folded_names_and_spelling_variants_map_to_keys() {
        let m = StateMap::build(&enduro(), &BTreeMap::new());
        assert_eq!(m.uuid(StateKey::Todo), Some("u-todo"));
        assert_eq!(m.uuid(StateKey::NeedsInput), Some("u-need"));
        assert_eq!(m.uuid(StateKey::Cancelled), Some("u-canc"));
        let m = StateMap::build(&[st("x", "To analyze", "unstarted", 1.0)], &BTreeMap::new());
        assert_eq!(m.uuid(StateKey::ToAnalyse), Some("x"));
        assert_eq!(
            m.resolved(StateKey::ToAnalyse).unwrap().source,
            Source::Folded
        );
    }

    #[test]
    fn missing_keys_alias_and_others_stay_absent() {
        let m = StateMap::build(&enduro(), &BTreeMap::new());
        assert_eq!(m.uuid(StateKey::ToAnalyse), Some("u-prog"));
        assert_eq!(
            m.resolved(StateKey::ToAnalyse).unwrap().source,
            Source::Alias(StateKey::InProgress)
        );
        assert_eq!(m.uuid(StateKey::AwaitingDeploy), Some("u-review"));
        assert_eq!(m.uuid(StateKey::Deploying), Some("u-prog"));
        assert_eq!(m.uuid(StateKey::Monitoring), Some("u-done"));
        assert_eq!(m.uuid(StateKey::Architecture), None);
    }

    #[test]
    fn enduro_skip_set_holds_neither_in_progress_nor_done() {
        let m = StateMap::build(&enduro(), &BTreeMap::new());
        let set = m.skip_set();
        assert_eq!(set, BTreeSet::from(["u-block", "u-need"]));
        assert!(!m.is_human_wait("u-prog"));
        assert!(!m.is_human_wait("u-done"));
        assert!(!m.is_human_wait("u-review"));
    }

    #[test]
    fn project_with_wait_states_skips_them() {
        let m = StateMap::build(&orchestrator_project(), &BTreeMap::new());
        for u in ["u-block", "u-need", "u-await", "u-depl", "u-mon"] {
            assert!(m.is_human_wait(u), "{u}");
        }
        assert!(!m.is_human_wait("u-prog"));
        assert_eq!(m.uuid(StateKey::ToAnalyse), Some("u-ta"));
    }

    #[test]
    fn lower_sequence_wins_a_fold_collision_with_a_warning() {
        let states = [
            st("a", "Done", "completed", 9.0),
            st("b", "DONE!", "completed", 3.0),
        ];
        let m = StateMap::build(&states, &BTreeMap::new());
        assert_eq!(m.uuid(StateKey::Done), Some("b"));
        assert_eq!(m.warnings.len(), 1);
    }

    #[test]
    fn state_names_first_present_wins_and_beats_folding() {
        let mut names = BTreeMap::new();
        names.insert(
            "blocked".to_string(),
            vec!["Frozen".to_string(), "On Hold".to_string()],
        );
        names.insert(
            "to_analyse".to_string(),
            vec!["Ready for analysis".to_string()],
        );
        let mut states = enduro();
        states.push(st("u-hold", "On Hold", "started", 20.0));
        let m = StateMap::build(&states, &names);
        assert_eq!(m.uuid(StateKey::Blocked), Some("u-hold"));
        assert_eq!(m.resolved(StateKey::Blocked).unwrap().source, Source::Named);
        // Named state absent: falls back to folding/aliasing, with a warning.
        assert_eq!(m.uuid(StateKey::ToAnalyse), Some("u-prog"));
        assert_eq!(m.warnings.len(), 1);
    }

    #[test]
    fn terminal_by_group_then_by_keys_when_group_unknown() {
        let m = StateMap::build(&enduro(), &BTreeMap::new());
        assert!(m.is_terminal("u-done"));
        assert!(m.is_terminal("u-canc"));
        assert!(!m.is_terminal("u-prog"));
        assert!(!m.is_terminal(""));
        // A completed-group state that is not the project's "Done".
        let mut states = enduro();
        states.push(st("u-shipped", "Shipped", "completed", 30.0));
        assert!(StateMap::build(&states, &BTreeMap::new()).is_terminal("u-shipped"));
        // No groups at all: done/cancelled keys decide.
        let bare: Vec<PlaneState> = enduro()
            .into_iter()
            .map(|s| PlaneState { group: None, ..s })
            .collect();
        let m = StateMap::build(&bare, &BTreeMap::new());
        assert!(m.is_terminal("u-done"));
        assert!(m.is_terminal("u-canc"));
        assert!(!m.is_terminal("u-review"));
    }

    #[test]
    fn merge_takes_project_keys_over_global() {
        let mut g = BTreeMap::new();
        g.insert("blocked".to_string(), vec!["A".to_string()]);
        g.insert("done".to_string(), vec!["D".to_string()]);
        let mut p = BTreeMap::new();
        p.insert("blocked".to_string(), vec!["B".to_string()]);
        let m = merge_state_names(&g, &p);
        assert_eq!(m["blocked"], vec!["B".to_string()]);
        assert_eq!(m["done"], vec!["D".to_string()]);
    }
}

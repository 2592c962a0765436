//! Unit tests of the loader: the file, the environment, the secrets.

use super::env::{parse_env_bool, parse_grace_overrides_json, parse_python_int};
use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MINIMAL: &str = r#"
[orchestrator]
url = "http://127.0.0.1:8000/"

[plane]
url = "https://plane.example.com"
workspace = "acme"
"#;

struct Fixture {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            env: HashMap::new(),
        }
    }
    fn set(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.into(), v.into());
        self
    }
    /// A file in the temp dir with mode 0600; returns its path.
    fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }
    fn load(&self, toml: &str, read_secrets: bool) -> Result<Config, ConfigError> {
        let path = self.file("reconcile.toml", toml);
        let env = self.env.clone();
        load_with_env(&path, read_secrets, &move |k| env.get(k).cloned())
    }
    fn ok(&self, toml: &str) -> Config {
        self.load(toml, false).unwrap_or_else(|e| panic!("{e}"))
    }
    fn err(&self, toml: &str) -> String {
        match self.load(toml, false) {
            Ok(_) => panic!("should fail:\n{toml}"),
            Err(e) => {
                assert!(!e.0.contains('\n'), "one line: {e}");
                e.0
            }
        }
    }
}

fn with(extra: &str) -> String {
    format!("{MINIMAL}\n{extra}")
}

#[test]
fn minimal_defaults() {
    let c = Fixture::new().ok(MINIMAL);
    assert_eq!(c.reconcile, Reconcile::default());
    assert_eq!(c.reconcile.grace_for_stage("testing"), 900);
    assert_eq!(
        c.state.path,
        PathBuf::from("/var/lib/reconcile/state.sqlite")
    );
    assert_eq!(c.state.states_cache_ttl_s, 300);
    assert_eq!(c.orchestrator.url, "http://127.0.0.1:8000");
    assert_eq!(c.orchestrator.webhook_path, "/webhooks/plane");
    assert_eq!(c.orchestrator.timeout, Duration::from_secs(10));
    assert_eq!(c.orchestrator.webhook_timeout, Duration::from_secs(30));
    assert!(c.orchestrator.token.is_none() && c.orchestrator.webhook_secret.is_none());
    assert_eq!(c.plane.url, "https://plane.example.com");
    assert_eq!(c.plane.workspace, "acme");
    assert_eq!(c.plane.items_path, "work-items");
    assert_eq!(
        (c.plane.per_page, c.plane.rate_reserve, c.plane.concurrency),
        (1000, 10, 4)
    );
    assert_eq!(
        (c.plane.full_resync_s, c.plane.resync_overlap_s),
        (1800, 120)
    );
    assert_eq!(c.plane.timeout, Duration::from_secs(10));
    assert_eq!(c.plane.max_pages, 100);
    assert!(c.plane.state_names.is_empty() && c.plane.api_key.is_none());
    assert!(c.telegram.is_none());
    assert!(c.metrics.textfile.is_none());
    assert!(c.projects.is_empty());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn full_file() {
    let c = Fixture::new().ok(&with(
        r#"
[reconcile]
enabled = false
plane_enabled = false
skip_blocked_enabled = false
notify_unblock = false
task_deps_enabled = false
grace_default_s = 60
max_developer_retries = 5
max_actions = 0
skip_work_items = ["ET-1"]
interval_s = 60
deadline_s = 20
[reconcile.grace_overrides]
testing = -1
review = 1800

[state]
path = "/tmp/x.sqlite"
states_cache_ttl_s = 5

[telegram]
chat_id = -1001234567890
message_thread_id = 42
link_template = "https://plane.example.com/acme/browse/{work_item_id}/"

[metrics]
textfile = "/tmp/r.prom"

[[projects]]
repo = "acme/shop"
plane_project_id = "p1"
state_names = { blocked = ["On Hold"] }

[[projects]]
repo = "acme/api"
plane_project_id = "p2"
enabled = false
"#,
    ));
    let r = &c.reconcile;
    assert!(!r.enabled && !r.plane_enabled && !r.skip_blocked_enabled);
    assert!(!r.notify_unblock && !r.task_deps_enabled);
    assert_eq!((r.grace_default_s, r.max_developer_retries), (60, 5));
    assert_eq!(
        (r.max_actions, r.interval_s, r.deadline_s),
        (0, Some(60), 20)
    );
    assert_eq!(r.skip_work_items, vec!["ET-1"]);
    assert_eq!(r.grace_for_stage("testing"), -1);
    assert_eq!(r.grace_for_stage("review"), 1800);
    assert_eq!(r.grace_for_stage("development"), 60);
    assert_eq!(c.state.path, PathBuf::from("/tmp/x.sqlite"));
    let t = c.telegram.as_ref().unwrap();
    assert_eq!(t.chat_id, "-1001234567890");
    assert_eq!(t.message_thread_id, Some(42));
    assert_eq!(t.api_url, "https://api.telegram.org");
    assert_eq!(t.unblock_template, DEFAULT_UNBLOCK_TEMPLATE);
    assert_eq!(t.cycle_template, DEFAULT_CYCLE_TEMPLATE);
    assert_eq!(t.digest_over, 5);
    assert_eq!(t.delivery_reserve_s, DEFAULT_DELIVERY_RESERVE_S);
    // deadline_s = 20 in this file: the reserve is 10 s, at most half.
    assert_eq!(c.delivery_reserve(), Duration::from_secs(10));
    assert!(
        t.link_template
            .as_deref()
            .unwrap()
            .contains("{work_item_id}")
    );
    assert_eq!(c.metrics.textfile, Some(PathBuf::from("/tmp/r.prom")));
    assert_eq!(c.projects.len(), 2);
    let shop = c.project_by_repo("acme/shop").unwrap();
    assert_eq!(shop.state_names["blocked"], vec!["On Hold"]);
    assert!(shop.enabled);
    assert!(!c.project_by_repo("acme/api").unwrap().enabled);
}

#[test]
fn telegram_chat_id_string_and_defaults() {
    let c = Fixture::new().ok(&with(
        "[telegram]\nchat_id = \" @chan \"\napi_url = \"http://127.0.0.1:9/\"\n",
    ));
    let t = c.telegram.unwrap();
    assert_eq!(t.chat_id, "@chan");
    assert_eq!(t.api_url, "http://127.0.0.1:9");
    assert!(t.link_template.is_none());
    let e = Fixture::new().err(&with("[telegram]\nmessage_thread_id = 1\n"));
    assert!(e.contains("[telegram] chat_id"), "{e}");
}

#[test]
fn state_directory_default() {
    let f = Fixture::new().set("STATE_DIRECTORY", "/var/lib/reconcile-x:/other");
    assert_eq!(
        f.ok(MINIMAL).state.path,
        PathBuf::from("/var/lib/reconcile-x/state.sqlite")
    );
    // An explicit path wins.
    assert_eq!(
        f.ok(&with("[state]\npath = \"/x.sqlite\"")).state.path,
        PathBuf::from("/x.sqlite")
    );
}

#[test]
fn env_overrides() {
    let f = Fixture::new()
        .set("ORCH_RECONCILE_ENABLED", "false")
        .set("ORCH_RECONCILE_PLANE_ENABLED", " OFF ")
        .set("ORCH_RECONCILE_SKIP_BLOCKED_ENABLED", "0")
        .set("ORCH_RECONCILE_NOTIFY_UNBLOCK", "No")
        .set("ORCH_TASK_DEPS_ENABLED", "no")
        .set("ORCH_RECONCILE_GRACE_DEFAULT_S", " 1_200 ")
        .set("ORCH_MAX_DEVELOPER_RETRIES", "7")
        .set("ORCH_RECONCILE_MAX_ACTIONS", "+3")
        .set("ORCH_RECONCILE_INTERVAL_S", "60.0")
        .set("ORCH_RECONCILE_DEADLINE_S", "40")
        .set(GRACE_OVERRIDES_ENV, r#"{"testing": 5, "review": "x"}"#);
    let c = f.ok(&with(
        "[reconcile]\nenabled = true\ninterval_s = 5\n[reconcile.grace_overrides]\ndevelopment = 1\n",
    ));
    let r = &c.reconcile;
    assert!(!r.enabled && !r.plane_enabled && !r.skip_blocked_enabled);
    assert!(!r.notify_unblock && !r.task_deps_enabled);
    assert_eq!(r.grace_default_s, 1200);
    assert_eq!(r.max_developer_retries, 7);
    assert_eq!(r.max_actions, 3);
    assert_eq!(r.interval_s, Some(60));
    assert_eq!(r.deadline_s, 40);
    // The env JSON replaces the file table entirely.
    assert_eq!(
        r.grace_overrides,
        BTreeMap::from([("testing".to_string(), 5)])
    );
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains(GRACE_OVERRIDES_ENV) && c.warnings[0].contains("review"));

    // Switching things on from env.
    let c = Fixture::new()
        .set("ORCH_RECONCILE_ENABLED", "YES")
        .set("ORCH_TASK_DEPS_ENABLED", "on")
        .ok(&with(
            "[reconcile]\nenabled = false\ntask_deps_enabled = false\n",
        ));
    assert!(c.reconcile.enabled && c.reconcile.task_deps_enabled);
}

#[test]
fn blank_grace_json_keeps_the_file_table() {
    let c = Fixture::new()
        .set(GRACE_OVERRIDES_ENV, "  ")
        .ok(&with("[reconcile.grace_overrides]\ntesting = 7\n"));
    assert_eq!(c.reconcile.grace_for_stage("testing"), 7);
    // Set but invalid: replaces with {} and warns.
    let c = Fixture::new()
        .set(GRACE_OVERRIDES_ENV, "{oops")
        .ok(&with("[reconcile.grace_overrides]\ntesting = 7\n"));
    assert!(c.reconcile.grace_overrides.is_empty());
    assert_eq!(c.warnings.len(), 1);
}

#[test]
fn env_bool_parsing() {
    for t in ["true", "TRUE", "1", "yes", "On", " true\n"] {
        assert_eq!(parse_env_bool(t), Some(true), "{t:?}");
    }
    for f in ["false", "False", "0", "no", "OFF", "\toff "] {
        assert_eq!(parse_env_bool(f), Some(false), "{f:?}");
    }
    for bad in ["", " ", "2", "enabled", "t", "y", "nope"] {
        assert_eq!(parse_env_bool(bad), None, "{bad:?}");
    }
}

#[test]
fn bad_env_values_name_the_variable() {
    for (var, value) in [
        ("ORCH_RECONCILE_ENABLED", "maybe"),
        ("ORCH_RECONCILE_PLANE_ENABLED", ""),
        ("ORCH_RECONCILE_SKIP_BLOCKED_ENABLED", "2"),
        ("ORCH_RECONCILE_NOTIFY_UNBLOCK", "y"),
        ("ORCH_TASK_DEPS_ENABLED", "enable"),
        ("ORCH_RECONCILE_GRACE_DEFAULT_S", "15m"),
        ("ORCH_MAX_DEVELOPER_RETRIES", "1.5"),
        ("ORCH_RECONCILE_MAX_ACTIONS", "-1"),
        ("ORCH_RECONCILE_INTERVAL_S", "soon"),
        ("ORCH_RECONCILE_DEADLINE_S", "0"),
        ("ORCH_RECONCILE_DEADLINE_S", "99999999999999999999"),
    ] {
        let e = Fixture::new().set(var, value).err(MINIMAL);
        assert!(e.contains(var), "{var}={value:?}: {e}");
    }
}

#[test]
fn unknown_keys_are_named() {
    let f = Fixture::new();
    let e = f.err(&with("gracee = 1"));
    // After [plane] in MINIMAL: put a top-level key first instead.
    assert!(e.contains("unknown key `gracee`"), "{e}");
    let e = f.err(&format!("bogus = 1\n{MINIMAL}"));
    assert!(e.contains("unknown key `bogus` at the top level"), "{e}");
    let e = f.err(&with("[reconcile]\ngracee_default_s = 5"));
    assert!(
        e.contains("unknown key `gracee_default_s` in [reconcile]"),
        "{e}"
    );
    assert!(e.starts_with("config "), "{e}");
    let e = f.err(&with(
        "[[projects]]\nrepo = \"a\"\nplane_project_id = \"b\"\nenable = false",
    ));
    assert!(e.contains("unknown key `enable` in [[projects]]"), "{e}");
    let e = f.err(&with("[telegram]\nchat_id = 1\ntoken = \"s3cr3t\""));
    assert!(e.contains("unknown key `token` in [telegram]"), "{e}");
    assert!(!e.contains("s3cr3t"), "{e}");
    let e = f.err(&with("[state]\npth = \"/x\""));
    assert!(e.contains("unknown key `pth` in [state]"), "{e}");
}

#[test]
fn required_keys_are_named() {
    let f = Fixture::new();
    let e = f.err("[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n");
    assert!(e.contains("[orchestrator] url"), "{e}");
    let e = f.err("[orchestrator]\nurl = \"http://o\"\n");
    assert!(e.contains("[plane] url"), "{e}");
    let e =
        f.err("[orchestrator]\ntimeout_s = 5\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n");
    assert!(e.contains("[orchestrator] url: required"), "{e}");
    let e = f.err("[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"http://p\"\n");
    assert!(e.contains("[plane] workspace: required"), "{e}");
    let e = f.err("[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"\"\nworkspace = \"w\"\n");
    assert!(e.contains("[plane] url"), "{e}");
}

#[test]
fn type_errors_name_the_key() {
    let f = Fixture::new();
    let e = f.err(&with("[reconcile]\ngrace_default_s = \"900\""));
    assert!(
        e.contains("[reconcile] grace_default_s: expected an integer, found string"),
        "{e}"
    );
    let e = f.err(&with("[reconcile.grace_overrides]\ntesting = \"x\""));
    assert!(e.contains("[reconcile.grace_overrides] testing"), "{e}");
    let e = f.err(&with("[reconcile.grace_overrides]\ntesting = 1.5"));
    assert!(e.contains("[reconcile.grace_overrides] testing"), "{e}");
    let e = f.err(&with("[reconcile]\nenabled = \"yes\""));
    assert!(e.contains("[reconcile] enabled: expected a boolean"), "{e}");
    let e = f.err(&with("[reconcile]\nmax_actions = -1"));
    assert!(e.contains("[reconcile] max_actions"), "{e}");
    let e = f.err("[orchestrator\nurl = 1");
    assert!(e.contains("line 1"), "{e}");
    let e = f.err(&with("[plane]\nper_page = 5"));
    assert!(e.contains("duplicate key `plane`"), "{e}");
}

#[test]
fn validation() {
    let f = Fixture::new();
    let cases = [
        (
            "[orchestrator]\nurl = \"ftp://o\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n",
            "[orchestrator] url",
        ),
        (
            "[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"plane.example.com\"\nworkspace = \"w\"\n",
            "[plane] url",
        ),
        (
            "[orchestrator]\nurl = \"http://\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n",
            "[orchestrator] url",
        ),
    ];
    for (toml, key) in cases {
        let e = f.err(toml);
        assert!(e.contains(key), "{e}");
    }
    for (extra, key) in [
        ("[reconcile]\ndeadline_s = 0", "[reconcile] deadline_s"),
        (
            "[telegram]\nchat_id = 1\napi_url = \"x\"",
            "[telegram] api_url",
        ),
        (
            "[telegram]\nchat_id = 1\ndigest_over = 0",
            "[telegram] digest_over",
        ),
        ("[telegram]\nchat_id = \"\"", "[telegram] chat_id"),
        ("[orchestrator.x]", "unknown key `x`"),
        (
            "[[projects]]\nrepo = \"a\"",
            "[[projects]] #1 plane_project_id",
        ),
        (
            "[[projects]]\nrepo = \" \"\nplane_project_id = \"p\"",
            "[[projects]] #1 repo",
        ),
        (
            "[[projects]]\nrepo = \"a\"\nplane_project_id = \"p\"\n[[projects]]\nrepo = \"a\"\nplane_project_id = \"q\"",
            "[[projects]] #2 repo",
        ),
        (
            "[[projects]]\nrepo = \"a\"\nplane_project_id = \"p\"\nstate_names = { blokced = [\"On Hold\"] }",
            "blokced",
        ),
    ] {
        let e = f.err(&with(extra));
        assert!(e.contains(key), "{extra}: {e}");
    }
    for (plane_extra, key) in [
        ("items_path = \"issue\"", "[plane] items_path"),
        ("per_page = 0", "[plane] per_page"),
        ("per_page = 1001", "[plane] per_page"),
        ("timeout_s = 0", "[plane] timeout_s"),
        ("concurrency = 0", "[plane] concurrency"),
        ("workspace2 = 1", "unknown key `workspace2` in [plane]"),
    ] {
        let toml = format!(
            "[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n{plane_extra}\n"
        );
        let e = f.err(&toml);
        assert!(e.contains(key), "{plane_extra}: {e}");
    }
    let e = f.err(
        "[orchestrator]\nurl = \"http://o\"\ntimeout_s = 0\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n",
    );
    assert!(e.contains("[orchestrator] timeout_s"), "{e}");
    let e = f.err(
        "[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n[plane.state_names]\ntoanalyse = [\"x\"]\n",
    );
    assert!(
        e.contains("[plane.state_names]") && e.contains("toanalyse"),
        "{e}"
    );
    let c = f.ok(
        "[orchestrator]\nurl = \"HTTPS://o//\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\nitems_path = \"issues\"\nper_page = 1000\n[plane.state_names]\nto_analyse = [\"To Analyse\", \"Ready\"]\n",
    );
    assert_eq!(c.orchestrator.url, "HTTPS://o");
    assert_eq!(c.plane.items_path, "issues");
    assert_eq!(c.plane.per_page, 1000);
    assert_eq!(
        c.plane.state_names["to_analyse"],
        vec!["To Analyse", "Ready"]
    );
}

#[test]
fn missing_config_file_names_the_path() {
    let path = Path::new("/nonexistent/dir/reconcile.toml");
    let e = load_with_env(path, false, &|_| None).unwrap_err();
    assert!(e.0.contains("/nonexistent/dir/reconcile.toml"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = load_with_env(dir.path(), false, &|_| None).unwrap_err();
    assert!(e.0.contains(&dir.path().display().to_string()), "{e}");
}

/// Secrets: credential dir > *_file > env; never in messages.
#[test]
fn secret_sources_in_order() {
    let f = Fixture::new();
    let creds = f.dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let token_file = f.file("orch.token", "from-file\n");
    let key_file = f.file("plane.key", "key-from-file \n");
    let toml = format!(
        "[orchestrator]\nurl = \"http://o\"\ntoken_file = {:?}\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\napi_key_file = {:?}\n[telegram]\nchat_id = 1\n",
        token_file.display().to_string(),
        key_file.display().to_string()
    );
    std::fs::write(creds.join("orchestrator-token"), "from-creds\n").unwrap();
    std::fs::set_permissions(
        creds.join("orchestrator-token"),
        std::fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    let f = f
        .set("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())
        .set("RECONCILE_ORCHESTRATOR_TOKEN", "from-env")
        .set("RECONCILE_PLANE_API_KEY", "key-from-env")
        .set("RECONCILE_TELEGRAM_BOT_TOKEN", "bot-from-env\n")
        .set("RECONCILE_PLANE_WEBHOOK_SECRET", "");
    let c = f.load(&toml, true).unwrap();
    assert_eq!(
        c.orchestrator.token.as_ref().unwrap().expose(),
        "from-creds"
    );
    assert_eq!(c.plane.api_key.as_ref().unwrap().expose(), "key-from-file");
    assert_eq!(
        c.telegram
            .as_ref()
            .unwrap()
            .bot_token
            .as_ref()
            .unwrap()
            .expose(),
        "bot-from-env"
    );
    // Empty env value counts as missing; the webhook secret is optional.
    assert!(c.orchestrator.webhook_secret.is_none());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let shown = format!("{c:?}");
    for s in ["from-creds", "key-from-file", "bot-from-env"] {
        assert!(!shown.contains(s), "Debug leaks {s}");
    }

    // An empty credential is an error naming it (not a silent fall-through).
    std::fs::write(creds.join("orchestrator-token"), "\n").unwrap();
    let e = f.load(&toml, true).unwrap_err().0;
    assert!(
        e.contains("credential orchestrator-token") && e.contains("is empty"),
        "{e}"
    );
    // Without the credential: the file.
    std::fs::remove_file(creds.join("orchestrator-token")).unwrap();
    let c = f.load(&toml, true).unwrap();
    assert_eq!(c.orchestrator.token.as_ref().unwrap().expose(), "from-file");
    // Without credentials dir and file: env.
    let f = f.set("CREDENTIALS_DIRECTORY", "");
    let toml_no_files = with("[telegram]\nchat_id = 1\n");
    let c = f.load(&toml_no_files, true).unwrap();
    assert_eq!(c.orchestrator.token.as_ref().unwrap().expose(), "from-env");
    assert_eq!(c.plane.api_key.as_ref().unwrap().expose(), "key-from-env");
}

#[test]
fn required_secrets_missing() {
    let f = Fixture::new().set("RECONCILE_PLANE_API_KEY", "k");
    let e = f.load(MINIMAL, true).unwrap_err().0;
    assert!(e.contains("orchestrator token"), "{e}");
    assert!(e.contains("orchestrator-token"), "{e}");
    assert!(e.contains("[orchestrator] token_file"), "{e}");
    assert!(e.contains("RECONCILE_ORCHESTRATOR_TOKEN"), "{e}");
    let f = Fixture::new().set("RECONCILE_ORCHESTRATOR_TOKEN", "t");
    let e = f.load(MINIMAL, true).unwrap_err().0;
    assert!(
        e.contains("Plane API key") && e.contains("RECONCILE_PLANE_API_KEY"),
        "{e}"
    );
    assert!(!e.contains("\"t\""), "{e}");
    let f = f.set("RECONCILE_PLANE_API_KEY", "k");
    assert!(f.load(MINIMAL, true).is_ok());
    let e = f
        .load(&with("[telegram]\nchat_id = 1"), true)
        .unwrap_err()
        .0;
    assert!(e.contains("Telegram bot token"), "{e}");
}

#[test]
fn unreadable_token_file_names_the_key() {
    let f = Fixture::new().set("RECONCILE_ORCHESTRATOR_TOKEN", "t");
    let toml = "[orchestrator]\nurl = \"http://o\"\ntoken_file = \"/nonexistent/orch.token\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n";
    let e = f.load(toml, true).unwrap_err().0;
    assert!(e.contains("[orchestrator] token_file"), "{e}");
    assert!(e.contains("/nonexistent/orch.token"), "{e}");
    // A directory is unreadable as a secret too.
    let toml = format!(
        "[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\napi_key_file = {:?}\n",
        f.dir.path().display().to_string()
    );
    let e = f.load(&toml, true).unwrap_err().0;
    assert!(e.contains("[plane] api_key_file"), "{e}");
}

#[test]
fn read_secrets_false_reads_nothing() {
    let f = Fixture::new()
        .set("CREDENTIALS_DIRECTORY", "/nonexistent/creds")
        .set("RECONCILE_ORCHESTRATOR_TOKEN", "t");
    let toml = "[orchestrator]\nurl = \"http://o\"\ntoken_file = \"/nonexistent/orch.token\"\nwebhook_secret_file = \"/nonexistent/w\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\napi_key_file = \"/nonexistent/k\"\n[telegram]\nchat_id = 1\nbot_token_file = \"/nonexistent/b\"\n";
    let c = f.load(toml, false).unwrap();
    assert!(c.orchestrator.token.is_none());
    assert!(c.orchestrator.webhook_secret.is_none());
    assert!(c.plane.api_key.is_none());
    assert!(c.telegram.unwrap().bot_token.is_none());
}

#[test]
fn permission_warnings() {
    let f = Fixture::new().set("RECONCILE_PLANE_API_KEY", "k");
    let token = f.file("orch.token", "secret-value\n");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let toml = format!(
        "[orchestrator]\nurl = \"http://o\"\ntoken_file = {:?}\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n",
        token.display().to_string()
    );
    let c = f.load(&toml, true).unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains(&token.display().to_string()));
    assert!(c.warnings[0].contains("readable by others"));
    assert!(!c.warnings[0].contains("secret-value"));

    // The config file itself: the group reading is fine, others reading,
    // others writing or the group writing are not.
    let path = f.file("open.toml", MINIMAL);
    for (mode, warned) in [
        (0o600, None),
        (0o640, None),
        (0o440, None),
        (0o641, None),
        (0o644, Some("readable by others")),
        (0o642, Some("writable by others")),
        (0o660, Some("writable by its group")),
        (
            0o666,
            Some("readable by others, writable by others, writable by its group"),
        ),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let c = load_with_env(&path, false, &|_| None).unwrap();
        match warned {
            None => assert!(c.warnings.is_empty(), "{mode:o}: {:?}", c.warnings),
            Some(what) => {
                assert_eq!(c.warnings.len(), 1, "{mode:o}: {:?}", c.warnings);
                assert!(c.warnings[0].contains(&path.display().to_string()));
                assert!(c.warnings[0].contains(what), "{mode:o}: {}", c.warnings[0]);
            }
        }
    }
}

// --- the grace-overrides JSON parser ---------------------------------

fn g(raw: &str) -> (BTreeMap<String, i64>, Vec<String>) {
    parse_grace_overrides_json(raw)
}

fn map(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn json_blank_invalid_and_non_objects() {
    assert_eq!(g(""), (BTreeMap::new(), vec![]));
    assert_eq!(g("  \n"), (BTreeMap::new(), vec![]));
    // Not JSON at all, and the non-standard literals Python accepted.
    for raw in [
        "{",
        "{'a': 1}",
        "{\"a\": 1,}",
        "{\"a\" 1}",
        "nope",
        "{\"a\": 1} x",
        "{\"a\": 01}",
        "{\"a\": -}",
        "{\"a\": +1}",
        "{\"a\": .5}",
        "{\"a\": \"\u{1}\"}",
        "\u{feff}{}",
        "{\"a\": NaN}",
        "{\"a\": -NaN}",
        "{\"a\": Infinity, \"b\": 1}",
        "{\"a\": -Infinity}",
        "{\"a\": nan}",
        "NaN",
        "{\"\\ud800\": 1}",
    ] {
        let (m, w) = g(raw);
        assert!(m.is_empty(), "{raw:?}");
        assert_eq!(w.len(), 1, "{raw:?}");
        assert!(
            w[0].contains(GRACE_OVERRIDES_ENV) && w[0].contains("not valid JSON"),
            "{raw:?}: {w:?}"
        );
    }
    for (raw, kind) in [
        ("[1,2]", "an array"),
        ("\"x\"", "a string"),
        ("5", "a number"),
        ("null", "null"),
        ("true", "a boolean"),
        ("1.5", "a number"),
    ] {
        let (m, w) = g(raw);
        assert!(m.is_empty(), "{raw:?}");
        assert_eq!(w.len(), 1, "{raw:?}");
        assert!(
            w[0].contains(GRACE_OVERRIDES_ENV)
                && w[0].contains(&format!("must be a JSON object, found {kind}")),
            "{raw:?}: {w:?}"
        );
    }
    assert_eq!(g(" {} "), (BTreeMap::new(), vec![]));
}

/// One row per value: the grace it gives, or None (warning, key ignored).
#[test]
fn json_values_row_by_row() {
    let rows: &[(&str, Option<i64>)] = &[
        // JSON integers.
        ("600", Some(600)),
        ("0", Some(0)),
        ("-1", Some(-1)),
        ("9223372036854775807", Some(i64::MAX)),
        ("-9223372036854775808", Some(i64::MIN)),
        ("9007199254740993", Some(9_007_199_254_740_993)),
        // Numbers with no fractional part.
        ("1.9e3", Some(1900)),
        ("1e3", Some(1000)),
        ("1E+3", Some(1000)),
        ("2.5e2", Some(250)),
        ("1800.0", Some(1800)),
        ("1.50e1", Some(15)),
        ("-0.0", Some(0)),
        ("-2.0", Some(-2)),
        ("0e999999999999999999999", Some(0)),
        ("9.223372036854775807e18", Some(i64::MAX)),
        ("12345e-2", None),
        ("123400e-2", Some(1234)),
        // Fractions.
        ("2.9", None),
        ("-2.9", None),
        ("0.5", None),
        ("1E-400", None),
        ("1e-99999999999999999999", None),
        // Out of range.
        ("9223372036854775808", None),
        ("-9223372036854775809", None),
        ("123456789012345678901234567890", None),
        ("1e19", None),
        ("-9.3e18", None),
        ("1e400", None),
        ("1e99999999999999999999", None),
        // Not numbers: the Python int() leniency is gone on purpose.
        ("\"12\"", None),
        ("\"1_000\"", None),
        ("\"x\"", None),
        ("true", None),
        ("false", None),
        ("null", None),
        ("[1]", None),
        ("{\"x\": 1}", None),
    ];
    for (value, want) in rows {
        let (m, w) = g(&format!("{{\"testing\": {value}, \"ok\": 5}}"));
        assert_eq!(m.get("ok"), Some(&5), "{value}: the other key stays");
        assert_eq!(m.get("testing").copied(), *want, "{value}: {w:?}");
        match want {
            Some(_) => assert!(w.is_empty(), "{value}: {w:?}"),
            None => {
                assert_eq!(w.len(), 1, "{value}: {w:?}");
                assert!(
                    w[0].contains(GRACE_OVERRIDES_ENV)
                        && w[0].contains("\"testing\"")
                        && w[0].contains("ignoring that key"),
                    "{value}: {w:?}"
                );
            }
        }
    }
}

#[test]
fn json_warnings_say_why_and_never_echo_the_value() {
    let (m, w) = g(r#"{"a": "s3cr3t", "b": 1.5, "c": 1e30, "d": true}"#);
    assert!(m.is_empty());
    let all = w.join("\n");
    assert!(!all.contains("s3cr3t"), "{all}");
    for why in [
        "a string",
        "a fraction",
        "out of the 64-bit range",
        "a boolean",
    ] {
        assert!(all.contains(why), "{why}: {all}");
    }
}

#[test]
fn json_duplicates_escapes_and_nesting() {
    // Last duplicate wins, even an invalid one (Python builds the dict first).
    assert_eq!(g(r#"{"a": 1, "a": 2}"#).0, map(&[("a", 2)]));
    let (m, w) = g(r#"{"a": 1, "a": "x"}"#);
    assert!(m.is_empty() && w.len() == 1);
    // Escapes and surrogate pairs in keys.
    let (m, w) = g(r#"{"te\u0073ting": 1, "\ud83d\ude00": 2, "a\/b\n": 4}"#);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(m, map(&[("testing", 1), ("😀", 2), ("a/b\n", 4)]));
    // Warnings stay on one line even for odd keys.
    let (_, w) = g("{\"line\\nbreak\": null}");
    assert!(!w[0].contains('\n'), "{w:?}");
    // Deep nesting: invalid, no stack overflow.
    let deep = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let (m, w) = g(&deep);
    assert!(m.is_empty() && w.len() == 1);
    let ok_nested = format!(
        "{{\"a\": {}{}, \"b\": 1}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert_eq!(g(&ok_nested).0, map(&[("b", 1)]));
}

#[test]
fn python_int_strings() {
    assert_eq!(parse_python_int("0"), Ok(0));
    assert_eq!(parse_python_int("-0"), Ok(0));
    assert_eq!(parse_python_int("0_0"), Ok(0));
    assert_eq!(parse_python_int("-9223372036854775808"), Ok(i64::MIN));
    assert_eq!(parse_python_int("9_223_372_036_854_775_807"), Ok(i64::MAX));
    assert!(parse_python_int("9223372036854775808").is_err());
    assert!(parse_python_int("+-1").is_err());
    assert!(parse_python_int("+").is_err());
    assert!(parse_python_int("1 2").is_err());
    assert!(parse_python_int("١٢").is_err());
}

proptest! {
    #[test]
    fn grace_json_never_panics(s in "\\PC*") {
        let _ = parse_grace_overrides_json(&s);
    }

    #[test]
    fn grace_json_never_panics_near_grammar(s in r#"[{}\[\]":, 0-9a-zA-Z_.eE+\\-]{0,60}"#) {
        let (_, w) = parse_grace_overrides_json(&s);
        for w in w {
            prop_assert!(!w.contains('\n'));
        }
    }

    #[test]
    fn grace_json_objects_of_ints(pairs in proptest::collection::vec(("[a-z]{1,8}", any::<i64>()), 0..8)) {
        let raw = format!(
            "{{{}}}",
            pairs.iter().map(|(k, v)| format!("{k:?}: {v}")).collect::<Vec<_>>().join(", ")
        );
        let (m, w) = parse_grace_overrides_json(&raw);
        prop_assert!(w.is_empty());
        let want: BTreeMap<String, i64> = pairs.into_iter().collect();
        prop_assert_eq!(m, want);
    }

    #[test]
    fn python_int_never_panics(s in "\\PC*") {
        let _ = parse_python_int(&s);
    }

    #[test]
    fn toml_never_panics(s in "\\PC{0,200}") {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, &s).unwrap();
        let _ = load_with_env(&p, true, &|_| None);
    }
}

#[test]
fn bounds_name_the_key_and_accept_their_ends() {
    let f = Fixture::new();
    for (extra, key) in [
        ("[reconcile]\ndeadline_s = 3601", "[reconcile] deadline_s"),
        (
            "[reconcile]\nmax_developer_retries = 1001",
            "[reconcile] max_developer_retries",
        ),
        (
            "[reconcile]\nmax_actions = 1000001",
            "[reconcile] max_actions",
        ),
        ("[reconcile]\ninterval_s = 86401", "[reconcile] interval_s"),
        (
            "[state]\nstates_cache_ttl_s = 86401",
            "[state] states_cache_ttl_s",
        ),
        (
            "[telegram]\nchat_id = 1\ntimeout_s = 0",
            "[telegram] timeout_s",
        ),
        (
            "[telegram]\nchat_id = 1\ndigest_over = 1001",
            "[telegram] digest_over",
        ),
        (
            "[telegram]\nchat_id = 1\ndelivery_reserve_s = 50",
            "[telegram] delivery_reserve_s",
        ),
        (
            "[telegram]\nchat_id = 1\nunblock_template = \"\"",
            "[telegram] unblock_template",
        ),
        (
            "[telegram]\nchat_id = 1\ncycle_template = \" \"",
            "[telegram] cycle_template",
        ),
    ] {
        let e = f.err(&with(extra));
        assert!(e.contains(key), "{extra}: {e}");
    }
    for (plane_extra, key) in [
        ("max_pages = 0", "[plane] max_pages"),
        ("max_pages = 100001", "[plane] max_pages"),
        ("concurrency = 33", "[plane] concurrency"),
        ("timeout_s = 301", "[plane] timeout_s"),
        ("timeout_s = 9223372036854775808", "[plane] timeout_s"),
        ("full_resync_s = 604801", "[plane] full_resync_s"),
        ("resync_overlap_s = 86401", "[plane] resync_overlap_s"),
        ("rate_reserve = 100001", "[plane] rate_reserve"),
    ] {
        let e = f.err(&format!(
            "[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n{plane_extra}\n"
        ));
        assert!(
            e.contains(key) && e.contains("between"),
            "{plane_extra}: {e}"
        );
    }
    for ws in ["a#b", "a?b", "a%20", "a.b", "é", "a/b"] {
        let e = f.err(&format!(
            "[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"http://p\"\nworkspace = {ws:?}\n"
        ));
        assert!(e.contains("[plane] workspace"), "{ws}: {e}");
    }
    // The ends of the ranges are fine.
    let c = f.ok(
        "[reconcile]\ndeadline_s = 3600\nmax_developer_retries = 0\n[orchestrator]\nurl = \"http://o\"\ntimeout_s = 300\nwebhook_timeout_s = 1\n[plane]\nurl = \"http://p\"\nworkspace = \"Acme_1-x\"\nmax_pages = 1\nconcurrency = 32\nfull_resync_s = 0\n[telegram]\nchat_id = 1\ndelivery_reserve_s = 3599\ndigest_over = 1000\n"
    );
    assert_eq!(c.plane.workspace, "Acme_1-x");
    assert_eq!((c.plane.max_pages, c.plane.concurrency), (1, 32));
    assert_eq!(c.telegram.as_ref().unwrap().delivery_reserve_s, 3599);
    // Under a shorter --deadline the reserve in use is at most half of it.
    let mut c = c;
    c.reconcile.deadline_s = 5;
    assert_eq!(c.delivery_reserve(), Duration::from_millis(2500));
    c.telegram = None;
    assert_eq!(c.delivery_reserve(), Duration::ZERO);
    // The env overrides are bounded too, and the reserve is checked after them.
    for (var, value) in [
        ("ORCH_RECONCILE_DEADLINE_S", "3601"),
        ("ORCH_RECONCILE_MAX_ACTIONS", "1000001"),
        ("ORCH_MAX_DEVELOPER_RETRIES", "-1"),
        ("ORCH_RECONCILE_INTERVAL_S", "86400.5"),
    ] {
        let e = Fixture::new().set(var, value).err(MINIMAL);
        assert!(
            e.contains(var) && e.contains("between"),
            "{var}={value}: {e}"
        );
    }
    let e = Fixture::new()
        .set("ORCH_RECONCILE_DEADLINE_S", "10")
        .err(&with("[telegram]\nchat_id = 1\n"));
    assert!(e.contains("[telegram] delivery_reserve_s"), "{e}");
}

#[test]
fn secrets_are_trimmed_then_must_be_printable_ascii() {
    use super::secrets::clean_secret;
    for (raw, want) in [
        ("tok\n", "tok"),
        ("tok\r\n", "tok"),
        ("  tok \t\n\n", "tok"),
        ("a!~#%", "a!~#%"),
        ("123:ABC-def_ghi", "123:ABC-def_ghi"),
    ] {
        assert_eq!(clean_secret(raw), Ok(want), "{raw:?}");
    }
    for (raw, why) in [
        ("", "is empty"),
        (" \n", "is empty"),
        ("to\nken", "contains a line break"),
        ("to\rken", "contains a line break"),
        ("to\0ken", "contains a NUL byte"),
        ("to ken", "contains whitespace"),
        ("to\tken", "contains whitespace"),
        ("tokén", "contains a non-ASCII character"),
        ("to\u{1b}[2Jken", "contains a control character"),
        ("to\u{7f}ken", "contains a control character"),
    ] {
        assert_eq!(clean_secret(raw), Err(why), "{raw:?}");
    }
}

#[test]
fn bad_secrets_name_their_source_never_their_value() {
    let f = Fixture::new();
    let key = f.file("plane.key", "s3cr3t\nsecond-line\n");
    let toml = format!(
        "[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\napi_key_file = {:?}\n",
        key.display().to_string()
    );
    let f = f.set("RECONCILE_ORCHESTRATOR_TOKEN", "t");
    let e = f.load(&toml, true).unwrap_err().0;
    assert!(
        e.contains("[plane] api_key_file") && e.contains(&key.display().to_string()),
        "{e}"
    );
    assert!(e.contains("line break") && !e.contains("s3cr3t"), "{e}");
    std::fs::write(&key, b"s3cr3t\xff\n").unwrap();
    let e = f.load(&toml, true).unwrap_err().0;
    assert!(e.contains("non-ASCII") && !e.contains("s3cr3t"), "{e}");
    // From the environment: named by the variable.
    let f = Fixture::new()
        .set("RECONCILE_ORCHESTRATOR_TOKEN", "s3cr3t with spaces")
        .set("RECONCILE_PLANE_API_KEY", "k");
    let e = f.load(MINIMAL, true).unwrap_err().0;
    assert!(
        e.contains("env RECONCILE_ORCHESTRATOR_TOKEN") && e.contains("whitespace"),
        "{e}"
    );
    assert!(!e.contains("s3cr3t"), "{e}");
    // A blank variable is unset: the missing-secret error, not this one.
    let f = Fixture::new()
        .set("RECONCILE_ORCHESTRATOR_TOKEN", "  ")
        .set("RECONCILE_PLANE_API_KEY", "k");
    let e = f.load(MINIMAL, true).unwrap_err().0;
    assert!(e.contains("no orchestrator token"), "{e}");
}

#[test]
fn special_files_are_refused_without_being_opened() {
    let f = Fixture::new();
    let fifo = f.dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Opening the FIFO would block this test for ever.
    let e = load_with_env(&fifo, false, &|_| None).unwrap_err().0;
    assert!(
        e.contains(&fifo.display().to_string()) && e.contains("FIFO"),
        "{e}"
    );
    let toml = format!(
        "[orchestrator]\nurl = \"http://o\"\ntoken_file = {:?}\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n",
        fifo.display().to_string()
    );
    let e = f
        .set("RECONCILE_PLANE_API_KEY", "k")
        .load(&toml, true)
        .unwrap_err()
        .0;
    assert!(
        e.contains("[orchestrator] token_file") && e.contains("FIFO"),
        "{e}"
    );
    let e = load_with_env(Path::new("/dev/null"), false, &|_| None)
        .unwrap_err()
        .0;
    assert!(e.contains("/dev/null") && e.contains("device"), "{e}");
}

#[test]
fn toml_errors_name_the_key_path_and_the_line() {
    let f = Fixture::new();
    let projects = "[[projects]]\nrepo = \"a\"\nplane_project_id = \"p\"\n[[projects]]\nrepo = \"b\"\nplane_project_id = \"q\"\n";
    let e = f.err(&with(&format!("{projects}colour = \"red\"\n")));
    assert!(
        e.contains("unknown key `colour` in [[projects]] #2 (expected"),
        "{e}"
    );
    assert!(e.contains("line 15, column 1"), "{e}");
    let e = f.err(&with(&format!(
        "{projects}state_names = {{ blocked = \"On Hold\" }}\n"
    )));
    assert!(
        e.contains("[[projects]] #2 state_names blocked: expected an array, found string"),
        "{e}"
    );
    let e = f.err(&with("[reconcile]\n\nenabled = \"s3cr3t-value\"\n"));
    assert!(
        e.contains("[reconcile] enabled: expected a boolean, found string (line 11, column 11)"),
        "{e}"
    );
    assert!(!e.contains("s3cr3t"), "{e}");
    let e = f.err(&with("[reconcile.grace_overrides]\nreview = 1.5\n"));
    assert!(
        e.contains("[reconcile.grace_overrides] review: expected an integer, found float"),
        "{e}"
    );
    let e = f.err(&with("[reconcile]\nmax_actions = -3\n"));
    assert!(
        e.contains("[reconcile] max_actions: expected a non-negative integer, found -3"),
        "{e}"
    );
    let e = f.err(&format!("reconcile = 5\n{MINIMAL}"));
    assert!(
        e.contains("reconcile: expected a table, found integer"),
        "{e}"
    );
    let e = f.err("[orchestrator]\nurl = \"http://o\"\nurl = \"http://p\"\n");
    assert!(e.contains("duplicate key `url` (line 3, column 1)"), "{e}");
}

#[test]
fn secrets_include_url_userinfo_longest_first() {
    let f = Fixture::new()
        .set("RECONCILE_ORCHESTRATOR_TOKEN", "orch-token")
        .set("RECONCILE_PLANE_API_KEY", "k")
        .set("RECONCILE_TELEGRAM_BOT_TOKEN", "1:bot");
    let c = f
        .load(
            "[orchestrator]\nurl = \"http://admin:pa%40ss@127.0.0.1:8000/x@y\"\n[plane]\nurl = \"https://svc@plane.example.com\"\nworkspace = \"w\"\n[telegram]\nchat_id = 1\napi_url = \"http://bot:hunter2@127.0.0.1:9\"\n",
            true,
        )
        .unwrap();
    assert_eq!(
        c.secrets(),
        vec![
            "admin:pa%40ss",
            "bot:hunter2",
            "orch-token",
            "hunter2",
            "pa%40ss",
            "1:bot",
            "svc",
            "k",
        ]
    );
    // Without secrets read: only the URLs' userinfo.
    let c = f
        .load(
            "[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n",
            false,
        )
        .unwrap();
    assert!(c.secrets().is_empty());
    assert_eq!(url_userinfo("http://h/a@b"), None);
    assert_eq!(url_userinfo("http://u:p@h?q=a@b"), Some("u:p"));
}

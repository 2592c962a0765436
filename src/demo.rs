//! `reconcile demo`: a real tick against the built-in simulated stack, with
//! a temporary config and sidecar, so a fresh checkout shows what the tool
//! does without any peer or configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::cli::Format;
use crate::sim::{Scenario, Simulator};
use crate::tick;

pub fn run(format: Format, verbose: bool) -> anyhow::Result<ExitCode> {
    let sim = Simulator::start(Scenario::demo()).context("starting the simulator")?;
    let dir = TempDir::new()?;
    let cfg = config(&sim, dir.path())?;
    let opts = tick::Options {
        command: tick::Command::All,
        dry_run: false,
        wait_lock: Duration::ZERO,
    };
    let report = tick::run(&cfg, &opts)?;
    crate::app::print_report(&report, format, verbose, false);
    if format == Format::Text {
        let messages = sim.telegram_messages();
        println!();
        println!("Telegram received {} message(s):", messages.len());
        for m in messages {
            println!("  {m}");
        }
    }
    Ok(ExitCode::from(report.exit_code))
}

fn config(sim: &Simulator, dir: &Path) -> anyhow::Result<crate::config::Config> {
    let s = sim.scenario();
    let write = |name: &str, value: &str| -> anyhow::Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, value).with_context(|| format!("writing {}", p.display()))?;
        set_private(&p);
        Ok(p)
    };
    let orch = write("orchestrator.token", &s.orchestrator_token)?;
    let plane = write("plane.key", &s.plane_api_key)?;
    let bot = write("telegram.token", &s.telegram_bot_token)?;
    let toml = format!(
        r#"[state]
path = "{state}"

[orchestrator]
url = "{orch_url}"
token_file = "{orch}"

[plane]
url = "{plane_url}"
workspace = "{ws}"
api_key_file = "{plane}"

[telegram]
bot_token_file = "{bot}"
chat_id = "-1001234567890"
api_url = "{tg_url}"
link_template = "https://plane.example.com/acme/browse/{{work_item_id}}/"

[[projects]]
repo = "acme/shop"
plane_project_id = "{pid}"
"#,
        state = dir.join("state.sqlite").display(),
        orch_url = sim.orchestrator_url(),
        orch = orch.display(),
        plane_url = sim.plane_url(),
        ws = s.plane_workspace,
        plane = plane.display(),
        bot = bot.display(),
        tg_url = sim.telegram_url(),
        pid = s.projects[0].id,
    );
    let path = write("reconcile.toml", &toml)?;
    // The operator's environment must not steer the demo.
    Ok(crate::config::load_with_env(&path, true, &|_| None)?)
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("reconcile-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
        set_private(&p);
        Ok(TempDir(p))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! `reconcile man` and `reconcile completions`: both generated from the clap
//! definitions in `cli`, so they never drift from the real command line.
//! The committed `man/reconcile.1` is this page (a test compares them).

use std::fmt::Write as _;

use clap::CommandFactory as _;

use crate::cli::{Cli, EXIT_CODES, EXIT_PRECEDENCE};

/// The man page, roff.
pub fn render() -> Vec<u8> {
    let mut cmd = Cli::command();
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone()).manual("reconcile manual");
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    let _ = man.render_options_section(&mut out);
    out.extend_from_slice(commands_section(&cmd).as_bytes());
    out.extend_from_slice(extra_sections().as_bytes());
    let _ = man.render_version_section(&mut out);
    out
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "reconcile", &mut out);
    out
}

/// Text for a roff line: backslashes and hyphens escaped, a leading control
/// character neutralised.
fn esc(text: &str) -> String {
    let s = text.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn bold(text: &str) -> String {
    format!("\\fB{}\\fR", esc(text))
}

fn italic(text: &str) -> String {
    format!("\\fI{}\\fR", esc(text))
}

/// How one argument of a subcommand is written in its usage line.
fn arg_usage(arg: &clap::Arg) -> String {
    let value = arg
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|p| !p.is_hide_set())
        .map(|p| p.get_name().to_string())
        .collect();
    match arg.get_long() {
        Some(long) if arg.get_action().takes_values() => {
            format!("[{} {}]", bold(&format!("--{long}")), italic(&value))
        }
        Some(long) => format!("[{}]", bold(&format!("--{long}"))),
        None if !possible.is_empty() => format!("<{}>", esc(&possible.join("|"))),
        None => format!("<{}>", italic(&value)),
    }
}

fn own_args(cmd: &clap::Command) -> Vec<&clap::Arg> {
    cmd.get_arguments()
        .filter(|a| !a.is_global_set() && !a.is_hide_set())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .collect()
}

fn push_lines(out: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{}", esc(line.trim()));
    }
}

fn commands_section(cmd: &clap::Command) -> String {
    let mut out = String::from(".SH COMMANDS\n");
    let mut subs: Vec<(String, &clap::Command)> = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let nested: Vec<&clap::Command> = sub
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .collect();
        if nested.is_empty() {
            subs.push((sub.get_name().to_string(), sub));
        } else {
            for n in nested {
                subs.push((format!("{} {}", sub.get_name(), n.get_name()), n));
            }
        }
    }
    for (name, sub) in subs {
        out.push_str(".TP\n");
        let mut usage = bold(&format!("reconcile {name}"));
        let args = own_args(sub);
        for a in &args {
            usage.push(' ');
            usage.push_str(&arg_usage(a));
        }
        let _ = writeln!(out, "{usage}");
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            push_lines(&mut out, &about.to_string());
        }
        for a in args {
            if let Some(help) = a.get_help() {
                out.push_str(".RS\n.TP\n");
                let _ = writeln!(out, "{}", arg_usage(a));
                push_lines(&mut out, &help.to_string());
                out.push_str(".RE\n");
            }
        }
    }
    out
}

fn extra_sections() -> String {
    let mut out = String::new();
    out.push_str(".SH OUTPUT\n");
    push_lines(
        &mut out,
        "stdout carries the report (text, or one JSON object with -o json); stderr carries \
         the logs. A tick that ran (exit 0, 1, 69 or 75) prints its report; 74, 78, a busy \
         lock and usage errors print only the error, on stderr, one line with its context. \
         With -q a tick with nothing to do prints nothing. No secret is ever printed.",
    );
    out.push_str(".SH EXIT STATUS\n");
    for (code, meaning) in EXIT_CODES {
        let _ = writeln!(out, ".TP\n.B {code}");
        push_lines(&mut out, meaning);
    }
    out.push_str(".PP\n");
    push_lines(&mut out, EXIT_PRECEDENCE);
    push_lines(
        &mut out,
        "A failure to write the metrics textfile is logged and does not change the exit code.",
    );
    metrics_section(&mut out);
    out.push_str(".SH ENVIRONMENT\n");
    let env: &[(&str, &str)] = &[
        (
            "RECONCILE_CONFIG",
            "The configuration file when --config is not given.",
        ),
        (
            "CREDENTIALS_DIRECTORY",
            "Where secrets are looked up first (systemd LoadCredential): orchestrator-token, \
             plane-webhook-secret, plane-api-key, telegram-bot-token.",
        ),
        (
            "RECONCILE_ORCHESTRATOR_TOKEN, RECONCILE_PLANE_WEBHOOK_SECRET, \
             RECONCILE_PLANE_API_KEY, RECONCILE_TELEGRAM_BOT_TOKEN",
            "Secrets, last in the lookup order.",
        ),
        (
            "STATE_DIRECTORY",
            "Under systemd, the default sidecar is $STATE_DIRECTORY/state.sqlite.",
        ),
        (
            "ORCH_RECONCILE_*, ORCH_TASK_DEPS_ENABLED, ORCH_MAX_DEVELOPER_RETRIES",
            "Override [reconcile] keys of the file; see reconcile.toml(5).",
        ),
        (
            "RUST_LOG",
            "Log filter (env_logger syntax); wins over -v and -q.",
        ),
        (
            "JOURNAL_STREAM",
            "Set by systemd: logs carry an <N> syslog priority prefix and no timestamp.",
        ),
    ];
    for (name, meaning) in env {
        let _ = writeln!(out, ".TP\n{}", bold(name));
        push_lines(&mut out, meaning);
    }
    out.push_str(".SH FILES\n");
    let files: &[(&str, &str)] = &[
        (
            "/etc/reconcile/reconcile.toml",
            "The configuration; see reconcile.toml(5).",
        ),
        (
            "/var/lib/reconcile/state.sqlite",
            "The sidecar: de-dup map, outbox, counters, history.",
        ),
        (
            "/var/lib/reconcile/state.sqlite.lock",
            "Held by the tick running now (and by outbox drop and forget).",
        ),
    ];
    for (name, meaning) in files {
        let _ = writeln!(out, ".TP\n{}", italic(name));
        push_lines(&mut out, meaning);
    }
    out.push_str(".SH EXAMPLES\n");
    for (what, example) in [
        (
            "See what a tick would do, changing nothing:",
            "reconcile -v --dry-run all",
        ),
        (
            "Validate a configuration without any secret or network:",
            "reconcile check --offline -c /etc/reconcile/reconcile.toml",
        ),
        (
            "The unblocks of the last two hours:",
            "reconcile history --since 2h",
        ),
    ] {
        out.push_str(".PP\n");
        push_lines(&mut out, what);
        let _ = writeln!(out, ".RS\n.B {}\n.RE", esc(example));
    }
    out.push_str(".SH SEE ALSO\n");
    out.push_str(&format!(
        "{}(5), {}(5), {}(5), {}(5)\n",
        bold("reconcile.toml"),
        bold("systemd.timer"),
        bold("systemd.exec"),
        bold("crontab")
    ));
    out
}

/// Every series of the metrics textfile, and where the alert rules and the
/// dashboard that read them are.
fn metrics_section(out: &mut String) {
    out.push_str(".SH METRICS\n");
    push_lines(
        out,
        "With [metrics] textfile set, every live gate, plane or all tick rewrites that file \
         atomically in the Prometheus text format, for node_exporter's textfile collector \
         (--collector.textfile.directory). Every counter is cumulative since the sidecar was \
         created and kept in it, so it never goes down; the gauges describe the last tick. A \
         tick stopped by its sidecar (exit 74) rewrites the last-run gauges and keeps the \
         rest of the previous file.",
    );
    for (name, kind, meaning) in crate::output::metrics::SERIES {
        let _ = writeln!(out, ".TP\n{} ({kind})", bold(name));
        push_lines(out, meaning);
    }
    out.push_str(".PP\n");
    push_lines(
        out,
        "Alert rules: /usr/share/doc/reconcile/prometheus/reconcile-alerts.yml (in the source: \
         packaging/prometheus/), loaded through rule_files: in prometheus.yml and tested with \
         promtool test rules reconcile-alerts.test.yml. Dashboard: \
         /usr/share/doc/reconcile/grafana/reconcile-dashboard.json, imported in Grafana \
         (Dashboards, New, Import) with a Prometheus data source for its $datasource \
         variable. To see the file without a deployment: reconcile demo --metrics FILE.",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_roff_controls() {
        assert_eq!(esc(".TH x"), "\\&.TH x");
        assert_eq!(esc("a\\b-c"), "a\\eb\\-c");
    }

    #[test]
    fn the_page_documents_every_exit_code_and_command() {
        let page = String::from_utf8(render()).unwrap();
        assert!(page.contains(".SH EXIT STATUS"));
        for (code, _) in EXIT_CODES {
            assert!(page.contains(&format!(".B {code}\n")), "exit code {code}");
        }
        for name in [
            "gate",
            "plane",
            "all",
            "status",
            "history",
            "check",
            "outbox list",
            "outbox drop",
            "forget",
            "demo",
            "completions",
            "man",
        ] {
            assert!(page.contains(&bold(&format!("reconcile {name}"))), "{name}");
        }
        for (name, _, _) in crate::output::metrics::SERIES {
            assert!(page.contains(&bold(name)), "{name}");
        }
    }
}

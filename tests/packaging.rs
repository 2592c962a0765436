//! Packaging (issue #6): the example config is valid, the Kubernetes
//! CronJob runs one tick at a time on a persistent sidecar with the image
//! packaging/container builds, the systemd units verify, and the generated
//! files shipped in the package are current.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::CONFIG_KEYS;

use serde_norway::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reconcile"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

/// `reconcile check --offline` of `config`, with the sidecar in a temp dir.
fn check_offline(config: &Path) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    bin()
        .args(["check", "--offline", "--config"])
        .arg(config)
        .arg("--state")
        .arg(dir.path().join("state.sqlite"))
        .output()
        .unwrap()
}

#[test]
fn the_example_config_is_valid_offline_and_names_every_key() {
    let out = check_offline(&root().join("packaging/reconcile.toml"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok    config"), "{stdout}");
    let text = read("packaging/reconcile.toml");
    for key in CONFIG_KEYS {
        assert!(
            text.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} ="))
                    || l.starts_with('[') && l.contains(&format!(".{key}]"))
            }),
            "packaging/reconcile.toml lacks {key}"
        );
    }
}

fn docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn the_kubernetes_cronjob_runs_one_tick_at_a_time_on_a_persistent_sidecar() {
    let docs = docs("packaging/kubernetes/reconcile-cronjob.yaml");
    let cron = kind(&docs, "CronJob");
    assert_eq!(cron["apiVersion"], "batch/v1");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(cron["spec"]["schedule"], "* * * * *");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let volumes = pod["volumes"].as_sequence().unwrap();
    let volume = |pred: &dyn Fn(&Value) -> bool| -> String {
        volumes.iter().find(|v| pred(v)).expect("volume")["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let pvc_volume = volume(&|v| !v["persistentVolumeClaim"].is_null());
    let secret_volume = volume(&|v| !v["secret"].is_null());
    let config_volume = volume(&|v| !v["configMap"].is_null());

    let c = &pod["containers"][0];
    let mount = |name: &str| -> String {
        c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| m["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("{name} not mounted"))["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let env = |name: &str| -> String {
        c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("env {name} missing"))["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(env("CREDENTIALS_DIRECTORY"), mount(&secret_volume));
    let config_path = env("RECONCILE_CONFIG");
    assert!(config_path.starts_with(&format!("{}/", mount(&config_volume))));
    assert_eq!(c["args"].as_sequence().unwrap().last().unwrap(), "all");

    // The PVC is ReadWriteOnce and the config's sidecar lives on it.
    let claim = volumes
        .iter()
        .find(|v| v["name"] == pvc_volume.as_str())
        .unwrap()["persistentVolumeClaim"]["claimName"]
        .as_str()
        .unwrap();
    let pvc = docs
        .iter()
        .find(|d| d["kind"] == "PersistentVolumeClaim" && d["metadata"]["name"] == claim)
        .expect("the claim is defined");
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteOnce");
    let cm_name = volumes
        .iter()
        .find(|v| v["name"] == config_volume.as_str())
        .unwrap()["configMap"]["name"]
        .as_str()
        .unwrap();
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == cm_name)
        .expect("the ConfigMap is defined");
    let file = Path::new(&config_path)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let toml_text = cm["data"][file]
        .as_str()
        .expect("the config file is in the ConfigMap");
    let state: toml::Table = toml::from_str(toml_text).unwrap();
    let sidecar = state["state"]["path"].as_str().unwrap();
    assert!(
        sidecar.starts_with(&format!("{}/", mount(&pvc_volume))),
        "{sidecar}"
    );

    // And that config is valid.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("reconcile.toml");
    std::fs::write(&cfg, toml_text).unwrap();
    let out = check_offline(&cfg);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The CronJob runs the image packaging/container/build.sh builds: its
/// name and tag (the crate version), its numeric user, its state volume.
#[test]
fn the_cronjob_runs_the_image_the_containerfile_builds() {
    let containerfile = read("packaging/container/Containerfile");
    let instruction = |name: &str| -> String {
        containerfile
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in the Containerfile"))
            .trim()
            .to_string()
    };
    assert_eq!(instruction("FROM"), "scratch");
    assert_eq!(instruction("ENTRYPOINT"), r#"["reconcile"]"#);
    assert_eq!(instruction("CMD"), r#"["all"]"#);
    assert_eq!(instruction("VOLUME"), r#"["/var/lib/reconcile"]"#);
    let user = instruction("USER");
    let (uid, gid) = user.split_once(':').expect("USER uid:gid");
    let uid: u64 = uid.parse().expect("numeric uid");
    let gid: u64 = gid.parse().expect("numeric gid");
    assert_ne!(uid, 0, "the image runs as root");

    let docs = docs("packaging/kubernetes/reconcile-cronjob.yaml");
    let pod = &kind(&docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(uid));
    assert_eq!(pod["securityContext"]["runAsGroup"].as_u64(), Some(gid));
    let c = &pod["containers"][0];
    let image = c["image"].as_str().unwrap();
    assert!(
        image.ends_with(&format!("/reconcile:{}", env!("CARGO_PKG_VERSION"))),
        "{image} is not the name and tag build.sh gives (reconcile:<crate version>)"
    );
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&"/var/lib/reconcile"), "{mounts:?}");
}

/// Every `Key=` in a unit file, as (section, key, value).
fn unit(rel: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in read(rel).lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{rel}: {line}"));
        out.push((section.clone(), k.to_string(), v.to_string()));
    }
    out
}

fn has(u: &[(String, String, String)], key: &str, value: &str) -> bool {
    u.iter().any(|(_, k, v)| k == key && v == value)
}

#[test]
fn the_units_are_a_hardened_oneshot_and_a_minutely_timer() {
    let s = unit("packaging/systemd/reconcile.service");
    for (k, v) in [
        ("Type", "oneshot"),
        ("ExecStart", "/usr/bin/reconcile all"),
        ("User", "reconcile"),
        ("Group", "reconcile"),
        ("StateDirectory", "reconcile"),
        (
            "LoadCredential",
            "orchestrator-token:/etc/reconcile/orchestrator.token",
        ),
        ("LoadCredential", "plane-api-key:/etc/reconcile/plane.key"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "-/var/lib/prometheus/node-exporter"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
    ] {
        assert!(has(&s, k, v), "reconcile.service lacks {k}={v}");
    }
    let timeout: u64 = s
        .iter()
        .find(|(_, k, _)| k == "TimeoutStartSec")
        .unwrap()
        .2
        .parse()
        .unwrap();
    assert!(timeout > 50, "TimeoutStartSec above the default deadline");
    let text = read("packaging/systemd/reconcile.service");
    for cred in ["plane-webhook-secret", "telegram-bot-token"] {
        assert!(
            text.contains(&format!("#LoadCredential={cred}:")),
            "{cred} shown"
        );
    }

    let t = unit("packaging/systemd/reconcile.timer");
    for (k, v) in [
        ("OnBootSec", "1min"),
        ("OnUnitInactiveSec", "60s"),
        ("RandomizedDelaySec", "10s"),
        ("AccuracySec", "1s"),
        ("WantedBy", "timers.target"),
    ] {
        assert!(has(&t, k, v), "reconcile.timer lacks {k}={v}");
    }
    assert_eq!(
        read("packaging/sysusers.d/reconcile.conf")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        ["u reconcile - \"reconcile sweeper\" /var/lib/reconcile"]
    );
    let cron = read("packaging/cron/reconcile");
    assert!(
        cron.lines()
            .any(|l| l == "* * * * * reconcile /usr/bin/reconcile -q all")
    );
}

#[test]
fn systemd_analyze_verifies_both_units() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze absent: skipped");
        return;
    };
    if !probe.status.success() {
        eprintln!("systemd-analyze unusable: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_reconcile");
    let service = read("packaging/systemd/reconcile.service")
        .replace("ExecStart=/usr/bin/reconcile", &format!("ExecStart={exe}"));
    std::fs::write(dir.path().join("reconcile.service"), service).unwrap();
    std::fs::write(
        dir.path().join("reconcile.timer"),
        read("packaging/systemd/reconcile.timer"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("reconcile.service"))
        .arg(dir.path().join("reconcile.timer"))
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lines about our units only (the host's own units may be noisy).
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("reconcile."))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

#[test]
fn shipped_completions_are_current() {
    for (shell, file) in [
        ("bash", "packaging/completions/reconcile.bash"),
        ("zsh", "packaging/completions/_reconcile"),
        ("fish", "packaging/completions/reconcile.fish"),
    ] {
        let out = bin().args(["completions", shell]).output().unwrap();
        assert!(
            out.stdout == read(file).as_bytes(),
            "{file} is stale. Regenerate with:\n  \
             cargo run --quiet -- completions {shell} > {file}"
        );
    }
}

#[test]
fn the_deb_installs_binary_pages_units_config_and_completions() {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets: Vec<(String, String)> = deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a[0].as_str().unwrap().to_string(),
                a[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let targets: BTreeSet<&str> = assets.iter().map(|(_, t)| t.as_str()).collect();
    for t in [
        "usr/bin/",
        "usr/share/man/man1/reconcile.1",
        "usr/share/man/man5/reconcile.toml.5",
        "usr/lib/sysusers.d/reconcile.conf",
        "etc/reconcile/reconcile.toml",
        "usr/share/bash-completion/completions/reconcile",
        "usr/share/zsh/vendor-completions/_reconcile",
        "usr/share/fish/vendor_completions.d/reconcile.fish",
        "usr/share/doc/reconcile/prometheus/reconcile-alerts.yml",
        "usr/share/doc/reconcile/grafana/reconcile-dashboard.json",
    ] {
        assert!(targets.contains(t), "the .deb does not install {t}");
    }
    for (src, _) in &assets {
        if !src.starts_with("target/") {
            assert!(root().join(src).exists(), "asset {src} missing");
        }
    }
    let conf: Vec<&str> = deb["conf-files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(conf.contains(&"/etc/reconcile/reconcile.toml"));

    // The units come through cargo-deb's systemd-units (with the
    // deb-systemd-helper snippets), installed but not enabled or started.
    let units = &deb["systemd-units"];
    assert_eq!(units["enable"].as_bool(), Some(false));
    assert_eq!(units["start"].as_bool(), Some(false));
    let dir = root().join(units["unit-scripts"].as_str().unwrap());
    for unit in ["reconcile.service", "reconcile.timer"] {
        assert!(dir.join(unit).is_file(), "{unit} not in {}", dir.display());
    }

    // The package version is the crate's, with a changelog entry for it.
    let changelog = read(deb["changelog"].as_str().unwrap());
    let first = changelog.lines().next().unwrap();
    let expected = format!("reconcile ({}-1) ", env!("CARGO_PKG_VERSION"));
    assert!(
        first.starts_with(&expected),
        "the Debian changelog's first entry is {first:?}, not for this version: add one"
    );
}

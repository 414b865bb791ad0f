//! A throwaway project folder and a way to run the real `disparo` binary in it.

#![allow(dead_code)]

pub mod pg;

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Project {
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Parses stdout as JSON Lines.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }
}

/// The repository's own example project (campaigns, templates, audiences, disparo.yaml).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

impl Project {
    pub fn empty() -> Project {
        Project {
            dir: tempfile::tempdir().unwrap(),
            env: Vec::new(),
        }
    }

    /// A copy of the shipped example.
    pub fn example() -> Project {
        let p = Project::empty();
        for d in ["campaigns", "templates", "audiences"] {
            copy_dir(&repo_root().join(d), &p.path().join(d));
        }
        std::fs::copy(
            repo_root().join("disparo.yaml"),
            p.path().join("disparo.yaml"),
        )
        .unwrap();
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str, content: &str) -> &Project {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn bytes(&self, rel: &str, content: &[u8]) -> &Project {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_default()
    }

    pub fn env(mut self, k: &str, v: &str) -> Project {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The `disparo` command in this project, with its environment, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_disparo"));
        c.args(args)
            .current_dir(self.path())
            .env_remove("DISPARO_DB")
            .env_remove("DISPARO_CONFIG")
            .env_remove("DISPARO_NOW")
            .env("NO_COLOR", "1")
            .env("DISPARO_SIMULATE", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_disparo"))
            .args(args)
            .current_dir(self.path())
            .env_remove("DISPARO_DB")
            .env_remove("DISPARO_CONFIG")
            .env_remove("DISPARO_NOW")
            .env("NO_COLOR", "1")
            // Tests pin the clock with --now, `run` included: a simulation (see cli/run.rs).
            .env("DISPARO_SIMULATE", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run disparo");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and asserts the exit code, showing both streams on failure.
    pub fn ok(&self, args: &[&str]) -> Output {
        self.expect(0, args)
    }

    pub fn expect(&self, code: i32, args: &[&str]) -> Output {
        let o = self.run(args);
        assert_eq!(
            o.code, code,
            "disparo {args:?} exited {}\n--- stdout\n{}\n--- stderr\n{}",
            o.code, o.stdout, o.stderr
        );
        o
    }

    /// Every message in the database as JSON objects (empty if there is no database).
    pub fn messages(&self) -> Vec<serde_json::Value> {
        if !self.path().join("disparo.db").exists() {
            return Vec::new();
        }
        self.ok(&["--format", "json", "messages"]).json_lines()
    }
}

/// The instant [`hook_project`] plans at: Monday 2026-11-30 11:00Z (08:00 in São Paulo).
pub const PLAN_NOW_MONDAY: &str = "2026-11-30T11:00:00Z";

/// A planned project: `n` São Paulo recipients due at 09:00 local (12:00Z) on 2026-11-30, on a
/// channel `hook` configured by `channel_yaml`, with `HOOK_SECRET` and `WA_TOKEN` in its
/// environment.
pub fn hook_project(channel_yaml: &str, n: usize) -> std::sync::Arc<Project> {
    let p = Project::empty()
        .env("HOOK_SECRET", "s3cr3t-hmac")
        .env("WA_TOKEN", "EAAG-secret-token");
    let mut csv = String::from("id,first_name,phone\n");
    for i in 0..n {
        csv.push_str(&format!("r{i},Ana {i},+55119{:08}\n", 20_000_000 + i));
    }
    p.file("disparo.yaml", &format!("timezone: America/Sao_Paulo\nchannels:\n  hook: {channel_yaml}\n"))
        .file("campaigns/c.yaml", "channel: hook\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n")
        .file("templates/t.hbs", "---\nwhatsapp: { name: promo, language: pt_BR, body: [\"{{first_name}}\"] }\n---\nOi {{first_name}}")
        .file("a.csv", &csv);
    p.ok(&["-q", "--now", PLAN_NOW_MONDAY, "plan", "c"]);
    std::sync::Arc::new(p)
}

/// Runs the binary off the async runtime, so a loopback server in the test keeps answering.
pub async fn run_async(p: &std::sync::Arc<Project>, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let p = p.clone();
    tokio::task::spawn_blocking(move || p.run(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

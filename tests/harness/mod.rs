//! A throwaway project folder and a way to run the real `disparo` binary in it.

#![allow(dead_code)]

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

    pub fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_disparo"))
            .args(args)
            .current_dir(self.path())
            .env_remove("DISPARO_DB")
            .env_remove("DISPARO_CONFIG")
            .env_remove("DISPARO_NOW")
            .env("NO_COLOR", "1")
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

//! A project on disk: its root, `disparo.yaml`, and where campaigns, templates and audiences are.

use std::path::{Path, PathBuf};

use super::{Campaign, Config};
use crate::diag::Problem;

#[derive(Debug, Clone)]
pub struct Project {
    /// The folder of `disparo.yaml`, else the working directory.
    pub root: PathBuf,
    pub config: Config,
    /// The configuration file, if there is one.
    pub config_path: Option<PathBuf>,
}

impl Project {
    /// Opens the project: an explicit config file, else `disparo.yaml` in `cwd`, else defaults.
    pub fn open(cwd: &Path, config: Option<&Path>) -> Result<Project, Problem> {
        match config {
            Some(path) => {
                let path = cwd.join(path);
                let root = path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| cwd.to_path_buf());
                Ok(Project {
                    config: Config::load(&path)?,
                    root,
                    config_path: Some(path),
                })
            }
            None => {
                let path = cwd.join("disparo.yaml");
                if path.exists() {
                    Ok(Project {
                        config: Config::load(&path)?,
                        root: cwd.to_path_buf(),
                        config_path: Some(path),
                    })
                } else {
                    Ok(Project {
                        root: cwd.to_path_buf(),
                        config: Config::default(),
                        config_path: None,
                    })
                }
            }
        }
    }

    pub fn campaigns_dir(&self) -> PathBuf {
        self.root.join("campaigns")
    }
    pub fn templates_dir(&self) -> PathBuf {
        self.root.join("templates")
    }

    /// Every campaign file, sorted by name.
    pub fn campaign_files(&self) -> Result<Vec<PathBuf>, Problem> {
        let dir = self.campaigns_dir();
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            Problem::new(format!("cannot list campaigns: {e}"))
                .in_file(&dir)
                .hint("run `disparo init` to create a project, or pass --config to point at one")
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Loads the campaign in `file` and checks that no other file in campaigns/ claims its
    /// name: two files named alike (by `name:`, or one's file stem being the other's name)
    /// would share one campaign in the database, and `plan NAME` would pick one of them.
    pub fn load_campaign(&self, file: &Path) -> Result<Campaign, Vec<Problem>> {
        let mut campaign = Campaign::load(file, &self.root)?;
        // `follows.campaign` may name the parent by its file's stem (or path); the store
        // knows it by its name, so the rule carries that.
        if let Some(f) = &mut campaign.follows
            && let Ok(parent_file) = self.find_campaign(&f.rule.parent)
            && let Ok(parent) = Campaign::load(&parent_file, &self.root)
        {
            f.rule.parent = parent.name;
        }
        let problems = self.name_conflicts(file, &campaign.name);
        if problems.is_empty() {
            Ok(campaign)
        } else {
            Err(problems)
        }
    }

    /// Every other campaign file whose name, or file stem, is `name` (the name of `file`).
    pub fn name_conflicts(&self, file: &Path, name: &str) -> Vec<Problem> {
        let Ok(files) = self.campaign_files() else {
            return Vec::new();
        };
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        };
        let shown = |f: &Path| {
            f.strip_prefix(&self.root)
                .unwrap_or(f)
                .display()
                .to_string()
        };
        let stem = |f: &Path| {
            f.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let line = Campaign::declared_name(file).map(|(_, l)| l);
        let mut problems = Vec::new();
        for other in files.iter().filter(|f| !same(f, file)) {
            let declared = Campaign::declared_name(other).map(|(n, _)| n);
            let other_stem = stem(other);
            let other_name = declared.clone().unwrap_or_else(|| other_stem.clone());
            let why = if other_name == name {
                format!(
                    "campaign name {name:?} is used by both {} and {}",
                    shown(file),
                    shown(other)
                )
            } else if other_stem == name {
                format!(
                    "campaign name {name:?} of {} is also the file name of {} (named {other_name:?}): `disparo plan {name}` would pick {}",
                    shown(file),
                    shown(other),
                    shown(other)
                )
            } else if stem(file) == other_name {
                format!(
                    "the file name of {} is the name {other_name:?} of {}: `disparo plan {other_name}` would pick {}, not {}",
                    shown(file),
                    shown(other),
                    shown(file),
                    shown(other)
                )
            } else {
                continue;
            };
            let mut p = Problem::new(why)
                .in_file(file)
                .field("name")
                .hint("give each campaign its own `name:` (it defaults to the file's stem): campaigns that share a name share their messages in the database");
            if let Some(l) = line {
                p = p.at_line(l);
            }
            problems.push(p);
        }
        problems
    }

    /// Finds a campaign by file path, file stem or `name:`.
    pub fn find_campaign(&self, name: &str) -> Result<PathBuf, Problem> {
        let direct = self.root.join(name);
        if direct.is_file() {
            return Ok(direct);
        }
        for ext in ["yaml", "yml"] {
            let p = self.campaigns_dir().join(format!("{name}.{ext}"));
            if p.is_file() {
                return Ok(p);
            }
        }
        let files = self.campaign_files()?;
        for f in &files {
            if let Ok(c) = Campaign::load(f, &self.root)
                && c.name == name
            {
                return Ok(f.clone());
            }
        }
        let known: Vec<String> = files
            .iter()
            .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        Err(
            Problem::new(format!("no campaign named {name:?}")).hint(if known.is_empty() {
                "there are no campaigns in campaigns/; create campaigns/NAME.yaml".to_string()
            } else {
                format!("known campaigns: {}", known.join(", "))
            }),
        )
    }
}

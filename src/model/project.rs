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

//! Building the channel adapters a command needs from `disparo.yaml`: secrets are read from
//! the environment here, once, and a missing one is a located problem, not a failed send.

use std::collections::HashMap;
use std::sync::Arc;

use super::Error;
use crate::channel::{BuildContext, Channel, ChannelBuildError, ChannelConfig};
use crate::diag::Problem;
use crate::dispatch::ChannelRuntime;
use crate::model::Project;
use crate::store::{State, Store};

/// The context channels are built in: the project root and one HTTP client for the run.
pub fn context(project: &Project) -> Result<BuildContext, Error> {
    let http = BuildContext::default_http_client().map_err(|e| Error::Internal(e.to_string()))?;
    Ok(BuildContext::new(project.root.clone(), http))
}

/// Builds one channel adapter from its configuration; secrets come from the environment.
pub fn build(
    ctx: &BuildContext,
    project: &Project,
    name: &str,
    config: &ChannelConfig,
) -> Result<Channel, Problem> {
    Channel::build(name, config, ctx).map_err(|e| {
        let (message, hint) = match &e {
            ChannelBuildError::MissingEnv { channel, key, var } => (
                format!("channel `{channel}`: environment variable {var} (named by `{key}`) is not set or empty"),
                format!("export {var} before running, or change `{key}` in disparo.yaml"),
            ),
            ChannelBuildError::Invalid { .. } => (e.to_string(), "fix the channel's settings in disparo.yaml (see the README's channel reference)".to_owned()),
        };
        let mut p = Problem::new(message).field(format!("channels.{name}")).hint(hint);
        if let Some(path) = &project.config_path {
            p = p.in_file(path);
        }
        p
    })
}

/// The adapters of every channel that has messages to send (pending or in flight), each
/// with its limits; every missing secret or bad setting is reported at once.
fn is_active_follow_up(store: &dyn Store, campaign: &str) -> Result<bool, Error> {
    Ok(store.campaign(campaign)?.is_some_and(|c| {
        c.rules.follows.is_some() && c.status == crate::store::CampaignStatus::Active
    }))
}

pub fn for_pending(
    project: &Project,
    store: &dyn Store,
) -> Result<HashMap<String, Arc<ChannelRuntime>>, Error> {
    let mut out = HashMap::new();
    let mut problems = Vec::new();
    let ctx = context(project)?;
    for s in store.summaries(None)? {
        if out.contains_key(&s.channel) {
            continue;
        }
        let due = s.counts.get(&State::Pending).copied().unwrap_or(0)
            + s.counts.get(&State::Sending).copied().unwrap_or(0);
        // A follow-up's messages appear while the run goes on (released as their parents
        // are decided): its channel is needed even with nothing pending yet.
        if due == 0 && !is_active_follow_up(store, &s.name)? {
            continue;
        }
        let Some(cfg) = project.config.channel(&s.channel) else {
            problems.push(
                Problem::new(format!(
                    "campaign {} uses channel {:?}, which disparo.yaml does not define",
                    s.name, s.channel
                ))
                .field("channels")
                .hint("define the channel in disparo.yaml, or cancel the campaign"),
            );
            continue;
        };
        match build(&ctx, project, &s.channel, &cfg) {
            Ok(c) => {
                out.insert(
                    s.channel.clone(),
                    Arc::new(ChannelRuntime::new(c, cfg.settings())),
                );
            }
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::Invalid(problems))
    }
}

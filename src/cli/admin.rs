//! Campaign control (`pause`, `resume`, `cancel`), the suppression list and `messages`.

use std::path::PathBuf;

use super::{CliError, CliResult, Ctx, Exit, output::say};
use crate::address::normalize_any;
use crate::diag::Problem;
use crate::store::{CampaignStatus, MessageFilter, State, Store};

#[derive(Debug, clap::Args)]
pub struct CampaignArg {
    /// The campaign's name.
    pub campaign: String,
}

#[derive(Debug, clap::Args)]
pub struct MessagesArgs {
    #[arg(long)]
    pub campaign: Option<String>,
    /// pending, sending, sent, failed, expired, skipped or cancelled.
    #[arg(long)]
    pub state: Option<String>,
    /// A recipient id.
    #[arg(long)]
    pub recipient: Option<String>,
    #[arg(long)]
    pub limit: Option<u64>,
}

#[derive(Debug, clap::Subcommand)]
pub enum SuppressCmd {
    /// Add addresses (phones or emails) to the opt-out list.
    Add {
        #[arg(required = true)]
        addresses: Vec<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Remove addresses from the opt-out list.
    Remove {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// List the opt-out list.
    List,
    /// Import addresses from a file: one per line, or a CSV with a `phone`, `email` or `address` column.
    Import { file: PathBuf },
}

fn store(ctx: &Ctx) -> Result<crate::store::SqliteStore, CliError> {
    let project = ctx.project().ok();
    ctx.store(project.as_ref())
}

pub fn pause(ctx: &Ctx, a: CampaignArg) -> CliResult {
    store(ctx)?.set_campaign_status(
        &a.campaign,
        CampaignStatus::Paused,
        Some("paused by `disparo pause`"),
    )?;
    say(
        ctx.quiet,
        format!(
            "paused {}: `disparo run` sends nothing of it until `disparo resume {}`",
            a.campaign, a.campaign
        ),
    );
    Ok(Exit::Ok)
}

pub fn resume(ctx: &Ctx, a: CampaignArg) -> CliResult {
    let s = store(ctx)?;
    if let Some(info) = s.campaign(&a.campaign)?
        && info.status == CampaignStatus::Cancelled
    {
        return Err(Problem::new(format!(
            "campaign {} was cancelled and cannot be resumed",
            a.campaign
        ))
        .hint("plan it again under a new name to send it")
        .into());
    }
    s.set_campaign_status(&a.campaign, CampaignStatus::Active, None)?;
    say(ctx.quiet, format!("resumed {}", a.campaign));
    Ok(Exit::Ok)
}

pub fn cancel(ctx: &Ctx, a: CampaignArg) -> CliResult {
    let s = store(ctx)?;
    s.set_campaign_status(
        &a.campaign,
        CampaignStatus::Cancelled,
        Some("cancelled by `disparo cancel`"),
    )?;
    let n = s.cancel_pending(&a.campaign)?;
    say(
        ctx.quiet,
        format!(
            "cancelled {}: {n} pending message(s) will never be sent",
            a.campaign
        ),
    );
    Ok(Exit::Ok)
}

pub fn messages(ctx: &Ctx, a: MessagesArgs) -> CliResult {
    let state = match &a.state {
        Some(s) => Some(State::parse(s).ok_or_else(|| {
            Problem::new(format!("unknown state {s:?}"))
                .field("--state")
                .hint("use pending, sending, sent, failed, expired, skipped or cancelled")
        })?),
        None => None,
    };
    let rows = store(ctx)?.messages(&MessageFilter {
        campaign: a.campaign,
        state,
        recipient: a.recipient,
        limit: a.limit,
    })?;
    let mut out = super::output::Rows::new(&[
        "campaign",
        "recipient",
        "occurrence",
        "state",
        "address",
        "planned_local",
        "due_at",
        "attempts",
        "provider_id",
        "last_error",
    ]);
    for r in rows {
        out.push(
            serde_json::to_value(&r)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default(),
        );
    }
    out.print(ctx.format)
        .map_err(|e| CliError::Internal(e.to_string()))?;
    Ok(Exit::Ok)
}

pub fn suppress(ctx: &Ctx, cmd: SuppressCmd) -> CliResult {
    let s = store(ctx)?;
    let now = ctx.now();
    match cmd {
        SuppressCmd::Add { addresses, reason } => {
            let mut added = 0;
            for a in addresses {
                added +=
                    u32::from(s.suppress(&normalize_any(&a), reason.as_deref(), "manual", now)?);
            }
            say(ctx.quiet, format!("suppressed {added} new address(es)"));
        }
        SuppressCmd::Remove { addresses } => {
            let mut removed = 0;
            for a in addresses {
                removed += u32::from(s.unsuppress(&normalize_any(&a))?);
            }
            say(
                ctx.quiet,
                format!("removed {removed} address(es) from the suppression list"),
            );
        }
        SuppressCmd::List => {
            let mut out = super::output::Rows::new(&["address", "reason", "source", "created_at"]);
            for e in s.suppressions()? {
                out.push(crate::row! { "address" => e.address, "reason" => e.reason, "source" => e.source, "created_at" => e.created_at.to_string() });
            }
            out.print(ctx.format)
                .map_err(|e| CliError::Internal(e.to_string()))?;
        }
        SuppressCmd::Import { file } => {
            let path = ctx.cwd.join(&file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Problem::new(format!("cannot read the suppression file: {e}")).in_file(&path)
            })?;
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let cols: Vec<&str> = header
                .split(',')
                .map(|c| c.trim().trim_matches('"'))
                .collect();
            let col = cols
                .iter()
                .position(|c| matches!(*c, "phone" | "email" | "address"));
            let mut added = 0;
            let mut all: Vec<&str> = Vec::new();
            if col.is_none() {
                all.push(header);
            }
            all.extend(lines);
            for line in all {
                let value = match col {
                    Some(i) => line.split(',').nth(i).unwrap_or_default(),
                    None => line,
                };
                let value = value.trim().trim_matches('"');
                if !value.is_empty() {
                    added += u32::from(s.suppress(
                        &normalize_any(value),
                        Some("imported"),
                        "import",
                        now,
                    )?);
                }
            }
            say(
                ctx.quiet,
                format!("imported {added} new address(es) from {}", file.display()),
            );
        }
    }
    Ok(Exit::Ok)
}

//! Campaign control (`pause`, `resume`, `cancel`), the suppression list and `messages`.

use std::path::PathBuf;

use super::{CliError, CliResult, Ctx, Exit, output::say};
use disparo::address::normalize_any;
use disparo::diag::Problem;
use disparo::store::{Access, CampaignStatus, MessageFilter, State, Store};

#[derive(Debug, clap::Args)]
pub struct CampaignArg {
    /// The campaign: its `name:` or its file's name (`black-friday` for campaigns/black-friday.yaml).
    pub campaign: String,
}

#[derive(Debug, clap::Args)]
pub struct MessagesArgs {
    /// Only this campaign.
    #[arg(long)]
    pub campaign: Option<String>,
    /// Only these states: pending, sending, sent, failed, expired, skipped, cancelled
    /// (repeat, or separate with commas).
    #[arg(long, value_delimiter = ',')]
    pub state: Vec<String>,
    /// Only this recipient id.
    #[arg(long)]
    pub recipient: Option<String>,
    /// Only messages to this address (phone or email, normalised like the audience).
    #[arg(long)]
    pub address: Option<String>,
    /// Only messages moved for this reason: quiet_hours, weekday, blackout, late or cap.
    #[arg(long)]
    pub reason: Option<String>,
    /// Only messages due at or after this instant (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub due_after: Option<String>,
    /// Only messages due before this instant (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub due_before: Option<String>,
    /// Only messages with an error recorded.
    #[arg(long)]
    pub errors: bool,
    /// At most this many messages.
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

/// The database a plan created (these commands never create one) and the stored name of the campaign typed (its `name:` or its file's stem).
fn store_and_campaign(ctx: &Ctx, typed: &str) -> Result<(Box<dyn Store>, String), CliError> {
    let project = ctx.project().ok();
    let s = ctx.existing_store(project.as_ref(), Access::Write)?;
    let name = super::campaign_name(project.as_ref(), s.as_ref(), typed)?;
    Ok((s, name))
}

pub fn pause(ctx: &Ctx, a: CampaignArg) -> CliResult {
    let (s, name) = store_and_campaign(ctx, &a.campaign)?;
    let a = CampaignArg { campaign: name };
    s.set_campaign_status(
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
    let (s, name) = store_and_campaign(ctx, &a.campaign)?;
    let a = CampaignArg { campaign: name };
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
    let (s, name) = store_and_campaign(ctx, &a.campaign)?;
    let a = CampaignArg { campaign: name };
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
    let mut states = Vec::new();
    for s in a.state.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        states.push(State::parse(s).ok_or_else(|| {
            Problem::new(format!("unknown state {s:?}"))
                .field("--state")
                .hint("use pending, sending, sent, failed, expired, skipped or cancelled")
        })?);
    }
    if let Some(r) = &a.reason
        && !["quiet_hours", "weekday", "blackout", "late", "cap"].contains(&r.as_str())
    {
        return Err(Problem::new(format!("unknown reason {r:?}"))
            .field("--reason")
            .hint("use quiet_hours, weekday, blackout, late or cap")
            .into());
    }
    let instant = |flag: &str, v: &Option<String>| -> Result<Option<jiff::Timestamp>, CliError> {
        v.as_deref()
            .map(|s| {
                s.trim().parse::<jiff::Timestamp>().map_err(|e| {
                    CliError::from(
                        Problem::new(format!("invalid {flag} {s:?}: {e}"))
                            .field(flag.to_owned())
                            .hint("write an RFC 3339 instant, e.g. 2026-11-27T12:00:00Z"),
                    )
                })
            })
            .transpose()
    };
    let after = instant("--due-after", &a.due_after)?;
    let before = instant("--due-before", &a.due_before)?;
    let address = a.address.as_deref().map(normalize_any);
    // The store filters by campaign, one state and recipient; the rest is filtered here.
    let local = states.len() > 1
        || address.is_some()
        || a.reason.is_some()
        || after.is_some()
        || before.is_some()
        || a.errors;
    let project = ctx.project().ok();
    let store = ctx.existing_store(project.as_ref(), Access::ReadOnly)?;
    let campaign = match &a.campaign {
        Some(c) => Some(super::campaign_name(project.as_ref(), store.as_ref(), c)?),
        None => None,
    };
    let rows = store.messages(&MessageFilter {
        campaign,
        state: if states.len() == 1 {
            Some(states[0])
        } else {
            None
        },
        recipient: a.recipient,
        limit: if local { None } else { a.limit },
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
    let keep = |r: &disparo::store::MessageRow| {
        (states.len() < 2 || states.contains(&r.state))
            && address.as_ref().is_none_or(|x| &r.address == x)
            && a.reason
                .as_ref()
                .is_none_or(|x| r.reasons.split(',').any(|y| y == x))
            && after.is_none_or(|t| r.due_at >= t)
            && before.is_none_or(|t| r.due_at < t)
            && (!a.errors || r.last_error.is_some())
    };
    for r in rows
        .into_iter()
        .filter(keep)
        .take(a.limit.map_or(usize::MAX, |l| l as usize))
    {
        out.push(
            serde_json::to_value(&r)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default(),
        );
    }
    if out.rows.is_empty() && ctx.format == super::Format::Table {
        say(ctx.quiet, "no messages match");
        return Ok(Exit::Ok);
    }
    out.show(ctx.format)?;
    Ok(Exit::Ok)
}

pub fn suppress(ctx: &Ctx, cmd: SuppressCmd) -> CliResult {
    // The opt-out list may be filled before any plan: only `list` needs an existing database.
    let project = ctx.project().ok();
    let s = match cmd {
        SuppressCmd::List => ctx.existing_store(project.as_ref(), Access::ReadOnly)?,
        _ => ctx.database(project.as_ref()).open(Access::Create)?,
    };
    let now = ctx.now();
    match cmd {
        SuppressCmd::Add { addresses, reason } => {
            let addresses = disparo::address::suppression_list(&addresses)?;
            let mut added = 0;
            for a in addresses {
                added += u32::from(s.suppress(&a, reason.as_deref(), "manual", now)?);
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
            out.show(ctx.format)?;
        }
        SuppressCmd::Import { file } => {
            let path = ctx.cwd.join(&file);
            let addresses = read_suppression_file(&path)?;
            let mut added = 0;
            for value in addresses {
                added += u32::from(s.suppress(
                    &normalize_any(&value),
                    Some("imported"),
                    "import",
                    now,
                )?);
            }
            say(
                ctx.quiet,
                format!("imported {added} new address(es) from {}", file.display()),
            );
        }
    }
    Ok(Exit::Ok)
}

/// The addresses of a suppression file: a CSV whose header has a `phone`, `email` or `address`
/// column (quoted fields and commas inside them handled by the csv crate), or one address per
/// line with no header.
fn read_suppression_file(path: &std::path::Path) -> Result<Vec<String>, CliError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        Problem::new(format!("cannot read the suppression file: {e}"))
            .in_file(path)
            .hint("pass a CSV with a phone, email or address column, or one address per line")
    };
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(&e))?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = rdr.records();
    let Some(first) = records.next() else {
        return Ok(Vec::new());
    };
    let first = first.map_err(|e| unreadable(&e))?;
    let column = first.iter().position(|c| {
        matches!(
            c.trim()
                .trim_start_matches('\u{feff}')
                .to_ascii_lowercase()
                .as_str(),
            "phone" | "email" | "address"
        )
    });
    let mut out = Vec::new();
    let mut take = |r: &csv::StringRecord| {
        let value = match column {
            Some(i) => r.get(i).unwrap_or_default(),
            None => r.as_slice(),
        };
        if !value.trim().is_empty() {
            out.push(value.trim().to_owned());
        }
    };
    if column.is_none() {
        take(&first);
    }
    for (i, r) in records.enumerate() {
        let r = r.map_err(|e| unreadable(&e).at_line(i as u64 + 2))?;
        take(&r);
    }
    Ok(out)
}

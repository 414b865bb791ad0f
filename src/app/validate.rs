//! Validating a campaign end to end: loading it, building its channel, planning and rendering
//! every recipient, and gathering every problem and warning with its place, without storing.

use std::ops::ControlFlow;

use crate::diag::Problem;
use crate::model::Project;
use crate::model::campaign::Campaign;
use crate::plan::{PlanOptions, Planner};

/// What validating one campaign found.
pub struct Checked {
    pub name: String,
    pub recipients: u64,
    pub messages: u64,
    /// Of `messages`, those planned as `skipped` (suppressed, late).
    pub skipped: u64,
    pub problems: Vec<Problem>,
    /// Problems beyond `max_problems`, counted only.
    pub more: u64,
    /// Things that do not stop a plan but will stop `run` here (a secret not in the
    /// environment: validation often runs where the secrets are not).
    pub warnings: Vec<Problem>,
    /// Facts said once, not problems (the CSV separator used).
    pub notes: Vec<String>,
}

/// How many steps up a chain of follow-ups is followed looking for a cycle.
const CHAIN_LIMIT: usize = 64;

/// A follow-up's parent must be a campaign of the project, and the chain of parents must not
/// come back to it (each would wait for the other forever). Located at `follows.campaign`.
pub(crate) fn follow_up_problems(project: &Project, campaign: &Campaign) -> Vec<Problem> {
    let Some(follows) = &campaign.follows else {
        return Vec::new();
    };
    let (line, column) = follows.line;
    let here = |p: Problem| {
        p.in_file(&campaign.file)
            .at(line, column)
            .field("follows.campaign")
    };
    let mut chain = vec![campaign.name.clone()];
    let mut parent = follows.rule.parent.clone();
    for step in 0..CHAIN_LIMIT {
        let found = project
            .find_campaign(&parent)
            .ok()
            .and_then(|f| project.load_campaign(&f).ok());
        let Some(p) = found else {
            if step > 0 {
                // The broken link is that campaign's own problem, reported when it is checked.
                return Vec::new();
            }
            let known = project.find_campaign(&parent).err().and_then(|e| e.hint);
            return vec![here(
                Problem::new(format!("follows an unknown campaign {parent:?}")).hint(
                    known.unwrap_or_else(|| {
                        "name a campaign of this project (its `name`, or its file's stem)".into()
                    }),
                ),
            )];
        };
        if chain.contains(&p.name) {
            chain.push(p.name.clone());
            return vec![here(
                Problem::new(format!("follow-ups form a cycle: {}", chain.join(" → ")))
                    .hint("each would wait for the other forever; the first step of a chain follows nothing"),
            )];
        }
        chain.push(p.name.clone());
        match p.follows {
            Some(f) => parent = f.rule.parent,
            None => return Vec::new(),
        }
    }
    Vec::new()
}

/// Loads and checks one campaign file end to end, rendering every recipient.
pub fn check_campaign(
    project: &Project,
    file: &std::path::Path,
    now: jiff::Timestamp,
    max_problems: usize,
) -> Checked {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Checked {
        name: stem,
        recipients: 0,
        messages: 0,
        skipped: 0,
        problems: Vec::new(),
        more: 0,
        warnings: Vec::new(),
        notes: Vec::new(),
    };
    let campaign = match project.load_campaign(file) {
        Ok(c) => c,
        Err(ps) => {
            out.problems = ps;
            return out;
        }
    };
    out.name = campaign.name.clone();
    out.problems.extend(follow_up_problems(project, &campaign));
    let mut planner = match Planner::prepare(project, campaign, PlanOptions::new(now)) {
        Ok(p) => p,
        Err(ps) => {
            out.problems = ps;
            return out;
        }
    };
    if let Ok(build) = super::channels::context(project)
        && let Err(p) =
            super::channels::build(&build, project, &planner.campaign.channel, &planner.channel)
    {
        out.warnings.push(p);
    }
    // The length and parameter checks `preview` shows on each message, the same function:
    // each distinct warning once, with how many messages and which recipients it concerns.
    let kind = super::checks::channel_kind(
        &planner.campaign.channel,
        planner.channel.type_name(),
        &planner.settings.address_field,
    );
    let mut message_warnings: Vec<(String, u64, Vec<String>)> = Vec::new();
    let result = planner.run(&mut |item| {
        match item {
            Ok(row) => {
                out.messages += 1;
                out.skipped += u64::from(row.skipped.is_some());
                for w in super::checks::check_to(kind, &row.content, &row.address).warnings {
                    let i = match message_warnings.iter().position(|(x, ..)| *x == w) {
                        Some(i) => i,
                        None => {
                            message_warnings.push((w, 0, Vec::new()));
                            message_warnings.len() - 1
                        }
                    };
                    let (_, n, who) = &mut message_warnings[i];
                    *n += 1;
                    if who.len() < 3 {
                        who.push(row.recipient.clone());
                    }
                }
            }
            Err(crate::plan::Unplanned { problem: p, .. }) => {
                if out.problems.len() < max_problems {
                    out.problems.push(p);
                } else {
                    out.more += 1;
                }
            }
        }
        ControlFlow::Continue(())
    });
    match result {
        Ok(n) => out.recipients = n,
        Err(p) => out.problems.push(p),
    }
    let audit = planner.audit();
    let field = &planner.settings.address_field;
    out.warnings.extend(
        audit
            .warnings(&planner.campaign, field)
            .into_iter()
            .map(Problem::new),
    );
    out.notes = audit.notes(&planner.campaign.audience);
    if out.recipients > 0 {
        out.notes
            .extend(audit.filter_line(&planner.campaign, out.recipients));
    }
    if let Some(note) = ramp_note(&planner, &out, now) {
        out.notes.push(note);
    }
    for (w, n, who) in message_warnings {
        let more = if n > who.len() as u64 { ", …" } else { "" };
        out.warnings.push(Problem::new(format!(
            "{}: {w} ({n} message(s): recipient {}{more}; see `disparo preview {}`)",
            out.name,
            who.join(", "),
            out.name
        )));
    }
    out
}

/// What the channel's warm-up ramp means for the campaign, said once: how many days its
/// messages take from the channel's first ramp day if all were due at once (`preview
/// --forecast` counts from what the channel already sent, when they fall due).
fn ramp_note(planner: &Planner, out: &Checked, now: jiff::Timestamp) -> Option<String> {
    let ramp = planner.settings.ramp.as_ref()?;
    let n = out.messages.saturating_sub(out.skipped);
    if n == 0 {
        return None;
    }
    let start = crate::ramp::forecast::Start {
        now,
        first_send: None,
        used: 0,
    };
    let days = crate::ramp::forecast::forecast(ramp, &start, &[(now, n)]).days_needed(ramp);
    Some(format!(
        "channel `{}` has a warm-up ramp ({}): from its first ramp day, this campaign's {} message(s) take {days} day(s) if all are due at once; `disparo preview {} --forecast` counts from what the channel already sent",
        planner.campaign.channel,
        ramp.describe(),
        crate::ramp::thousands(n),
        out.name
    ))
}

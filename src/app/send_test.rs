//! `disparo send-test`: one recipient's message, rendered exactly as `plan` would render it,
//! sent now through the campaign's real channel to a tester's address — to see it on a
//! phone or in an inbox before the campaign goes out.
//!
//! A test send ignores the schedule (quiet hours, days, caps: the tester asked for it now),
//! is recorded apart from the campaign's messages ([`crate::store::Store::record_test_send`]),
//! so it never marks the recipient's message sent, never counts against a frequency cap and
//! is not in the funnel; and it carries an idempotency key of its own, so a provider never
//! takes it for the real message or the real one for it. The tester's address must not be on
//! the suppression list: an opt-out holds for tests too.

use std::ops::ControlFlow;

use jiff::Timestamp;

use super::Error;
use super::db::Database;
use crate::address::{self, AddressKind};
use crate::diag::Problem;
use crate::message::Envelope;
use crate::model::Project;
use crate::plan::{PlanOptions, PlannedRow, Planner};
use crate::store::{Access, TestSend};

/// What to send, and to whom.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The campaign's name or file stem.
    pub campaign: &'a str,
    /// The tester's address (a phone for phone channels, an email for smtp).
    pub to: &'a str,
    /// The audience recipient whose message is rendered; the first one kept by the
    /// campaign's `where:` when `None`.
    pub as_recipient: Option<&'a str>,
    pub now: Timestamp,
}

/// What was sent, and what became of it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub send: TestSend,
    /// Whether a database recorded it (none exists before the first `plan`).
    pub recorded: bool,
    /// Why recording it failed, when a database exists but could not take it.
    pub record_error: Option<String>,
}

/// Renders and sends one test message; a failed send is an `Ok` whose outcome says so.
pub fn send(project: &Project, db: &Database, req: &Request<'_>) -> Result<Outcome, Error> {
    let file = project.find_campaign(req.campaign)?;
    let campaign = project.load_campaign(&file)?;
    let mut planner = Planner::prepare(project, campaign, PlanOptions::new(req.now))?;
    let kind = AddressKind::for_field(&planner.settings.address_field);
    let to = address::normalize(kind, req.to).map_err(|e| {
        Problem::new(format!("--to {:?}: {e}", req.to))
            .field("--to")
            .hint(match kind {
                AddressKind::Phone => "give a phone in E.164, e.g. +5511987654321",
                AddressKind::Email => "give an email address, e.g. ana@example.com",
                AddressKind::Other => "give the address the channel sends to",
            })
    })?;
    let store = db.open_if_exists(Access::Write)?;
    if let Some(s) = &store
        && s.is_suppressed(&to)?
    {
        return Err(Problem::new(format!(
            "{to} is on the suppression list: nothing is sent to it, tests included"
        ))
        .field("--to")
        .hint("send the test to another address, or `disparo suppress remove` it if the opt-out was yours")
        .into());
    }
    let row = find_row(&mut planner, req.as_recipient)?;
    let message_id = test_key(&planner.campaign.name, &row.recipient, req.now);
    let (mut content, vars) = planner.render_for_tester(&row, &to, &message_id)?;
    if let Some(subject) = &mut content.subject {
        *subject = format!("[test] {subject}");
    }
    let envelope = Envelope {
        message_id,
        campaign: planner.campaign.name.clone(),
        recipient: row.recipient.clone(),
        channel: planner.campaign.channel.clone(),
        address: to.clone(),
        locale: row.locale.clone(),
        content,
        vars,
        scheduled_at: req.now,
        attempt: 1,
        attempt_at: req.now,
    };
    let ctx = super::channels::context(project)?;
    let channel =
        super::channels::build(&ctx, project, &planner.campaign.channel, &planner.channel)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the runtime: {e}")))?;
    let result = runtime.block_on(channel.send(&envelope));
    let send = TestSend {
        campaign: envelope.campaign.clone(),
        recipient: envelope.recipient.clone(),
        channel: envelope.channel.clone(),
        address: to,
        sent_at: Timestamp::now(),
        outcome: if result.is_ok() { "sent" } else { "failed" }.to_owned(),
        provider_id: result.as_ref().ok().and_then(|d| d.provider_id.clone()),
        error: result.as_ref().err().map(|e| {
            let code = e
                .code
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            format!("{}{code}", e.message)
        }),
    };
    // It went (or was refused) whatever the record does: a failed record is said, not an
    // error that would make the tester send it again.
    let (recorded, record_error) = match &store {
        Some(s) => match s.record_test_send(&send) {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e.to_string())),
        },
        None => (false, None),
    };
    Ok(Outcome {
        send,
        recorded,
        record_error,
    })
}

/// The recipient's first planned message (its first occurrence), or a problem saying why
/// there is none.
fn find_row(planner: &mut Planner, id: Option<&str>) -> Result<PlannedRow, Error> {
    let mut found: Option<PlannedRow> = None;
    let mut problem: Option<Problem> = None;
    planner.run(&mut |item| match item {
        Ok(row) if id.is_none_or(|want| want == row.recipient) => {
            found = Some(row.clone());
            ControlFlow::Break(())
        }
        Err(u) if id.is_some() && u.recipient.as_deref() == id => {
            problem = Some(u.problem);
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })?;
    if let Some(p) = problem {
        return Err(p.into());
    }
    found.ok_or_else(|| {
        let audience = planner.campaign.audience.display().to_string();
        match id {
            Some(id) => Problem::new(format!(
                "no message for recipient {id:?}: it is not in {audience}, or the campaign's `where:` does not keep it"
            ))
            .field("--as")
            .hint("give the `id` of a recipient the campaign sends to (see `disparo preview`)"),
            None => Problem::new(format!("the campaign has no message to test: no recipient of {audience} is kept"))
                .hint("check the audience and the campaign's `where:`"),
        }
        .into()
    })
}

/// An idempotency key of the test's own: `t-` and 24 hex digits of a hash of the campaign,
/// the recipient and the instant, so two tests are two messages and neither is the real one.
fn test_key(campaign: &str, recipient: &str, now: Timestamp) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"disparo test send\0");
    h.update(campaign.as_bytes());
    h.update([0]);
    h.update(recipient.as_bytes());
    h.update([0]);
    h.update(now.as_nanosecond().to_be_bytes());
    h.update(Timestamp::now().as_nanosecond().to_be_bytes());
    let d = h.finalize();
    let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("t-{hex}")
}

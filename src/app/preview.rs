//! What `preview` needs before it plans: the campaign's planner (with the opt-out list when a
//! database exists; a preview never creates one), the channel when requests are shown, what
//! kind of messages it carries, its effective rate, the zone the forecast speaks in, and the
//! channel's warm-up ramp with what the channel already used of it.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::Error;
use super::checks::{Kind, channel_kind};
use super::db::Database;
use crate::channel::Channel;
use crate::model::Project;
use crate::plan::{PlanOptions, Planner};
use crate::ramp::{ChannelRamp, Ramp, RampUsage};
use crate::store::Access;

/// A campaign ready to be previewed.
pub struct Preview {
    pub planner: Planner,
    /// The channel adapter, when asked for (to show each exact request); `None` also when it
    /// cannot be built here (a secret not in the environment: `validate` says so).
    pub channel: Option<Channel>,
    pub kind: Kind,
    /// Messages per second at most: the campaign's throttle or the channel's rate.
    pub rate: Option<f64>,
    /// The campaign's zone (or the project's), in which the forecast shows local hours.
    pub zone_name: String,
    pub zone: TimeZone,
    /// For a follow-up campaign: its parent's messages, to say who would get it now and why.
    pub follow_up: Option<super::follow_up::FollowUpView>,
    /// The channel's warm-up ramp, with what the channel used of it when a database exists.
    pub ramp: Option<(Ramp, Option<RampUsage>)>,
}

/// Prepares `campaign` (a name or file) for a preview at `now`.
pub fn prepare(
    project: &Project,
    db: &Database,
    campaign: &str,
    now: Timestamp,
    with_channel: bool,
) -> Result<Preview, Error> {
    let file = project.find_campaign(campaign)?;
    let campaign = project.load_campaign(&file)?;
    let mut opts = PlanOptions::new(now);
    let store = db.open_if_exists(Access::ReadOnly)?;
    if let Some(store) = &store {
        opts.suppressed = store
            .suppressions()?
            .into_iter()
            .map(|s| s.address)
            .collect();
    }
    let follow_up = match &campaign.follows {
        Some(f) => Some(super::follow_up::FollowUpView::read(
            &campaign.name,
            f.rule.clone(),
            store.as_deref(),
        )?),
        None => None,
    };
    let planner = Planner::prepare(project, campaign, opts)?;
    let ramp = match (&planner.settings.ramp, &store) {
        (None, _) => None,
        (Some(r), None) => Some((r.clone(), None)),
        (Some(r), Some(store)) => {
            let ramps = [ChannelRamp {
                channel: planner.campaign.channel.clone(),
                ramp: r.clone(),
            }];
            // Leases are judged on the real clock, whatever --now says.
            let usage = store.ramp_usage(&ramps, now, Timestamp::now(), None)?;
            Some((r.clone(), usage.into_iter().next()))
        }
    };
    drop(store);
    let channel = if with_channel {
        let build = super::channels::context(project)?;
        super::channels::build(&build, project, &planner.campaign.channel, &planner.channel).ok()
    } else {
        None
    };
    let rate = match (
        planner.campaign.throttle.map(|r| r.as_per_second()),
        planner.settings.rate.map(|r| r.as_per_second()),
    ) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let kind = channel_kind(
        &planner.campaign.channel,
        planner.channel.type_name(),
        &planner.settings.address_field,
    );
    let (zone_name, zone) = planner.campaign.zone.clone().unwrap_or_else(|| {
        (
            project.config.timezone_name.clone(),
            project.config.timezone.clone(),
        )
    });
    Ok(Preview {
        planner,
        channel,
        kind,
        rate,
        zone_name,
        zone,
        follow_up,
        ramp,
    })
}

//! `{{unsubscribe_url}}`: the signed one-click link of the campaign's smtp channel, made per
//! recipient when a template uses it.

use crate::channel::ChannelConfig;
use crate::diag::Problem;
use crate::model::Campaign;

/// A channel's unsubscribe link: its URL with `{token}` and the key that signs the token.
pub(super) struct UnsubscribeLink {
    url: String,
    key: Vec<u8>,
}

impl UnsubscribeLink {
    /// The link of `campaign`'s channel, for a template that uses `{{unsubscribe_url}}`: an
    /// smtp channel with `list_unsubscribe.url` holding `{token}` and its key's variable
    /// set (the same link its `List-Unsubscribe` header carries, answered by `disparo
    /// serve`).
    pub(super) fn of(
        campaign: &Campaign,
        channel: &ChannelConfig,
    ) -> Result<UnsubscribeLink, Problem> {
        let problem = |what: String| {
            let (l, c) = campaign.lines.channel;
            Problem::new(format!(
                "the template uses {{{{unsubscribe_url}}}}, but {what}"
            ))
            .in_file(&campaign.file)
            .at(l, c)
            .field("channel")
        };
        let ChannelConfig::Smtp(smtp) = channel else {
            return Err(problem(format!("channel {:?} is not an smtp channel", campaign.channel))
                .hint("unsubscribe links come with an smtp channel's `list_unsubscribe.url`; for SMS and WhatsApp, tell readers to reply STOP (disparo serve honours it)"));
        };
        let url = smtp
            .list_unsubscribe
            .as_ref()
            .and_then(|l| l.url.clone())
            .filter(|u| u.contains("{token}"))
            .ok_or_else(|| {
                problem(format!("channel {:?} has no `list_unsubscribe.url` with {{token}}", campaign.channel))
                    .hint("set e.g. `list_unsubscribe: { url: \"https://hooks.example.com/unsubscribe/{token}\" }` and `unsubscribe_secret_env` on the channel (docs/receipts.md)")
            })?;
        let var = smtp.unsubscribe_secret_env.as_deref().ok_or_else(|| {
            problem(format!(
                "channel {:?} has no `unsubscribe_secret_env`",
                campaign.channel
            ))
            .hint("name the environment variable holding the key that signs each link")
        })?;
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(UnsubscribeLink {
                url,
                key: v.into_bytes(),
            }),
            _ => Err(problem(format!(
                "environment variable {var} (named by `unsubscribe_secret_env`) is not set"
            ))
            .hint(format!(
                "export {var} (the key `disparo serve` checks links with)"
            ))),
        }
    }

    pub(super) fn for_recipient(&self, campaign: &str, recipient: &str, address: &str) -> String {
        let token = crate::unsubscribe::token(
            &self.key,
            &crate::unsubscribe::Subscriber {
                campaign: campaign.to_owned(),
                recipient: recipient.to_owned(),
                address: address.to_owned(),
            },
        );
        self.url.replace("{token}", &token)
    }
}

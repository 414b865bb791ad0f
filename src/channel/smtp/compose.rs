//! The email an `smtp` channel sends, from its configuration and a rendered message: the
//! headers a real campaign needs (Reply-To, the recipient's name in `To`, custom headers,
//! `List-Unsubscribe` with one-click per RFC 8058), folded where long, and DKIM-signed last,
//! once every header is final.

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};

use super::super::{BuildContext, ChannelBuildError, Outgoing, SendError};
use crate::channel::config::{DkimAlgorithm, SmtpConfig};
use crate::unsubscribe::{self, Subscriber};

/// Headers disparo writes itself, or that would change what the message is: refused in
/// `headers:`.
const STRUCTURAL: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "dkim-signature",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "return-path",
    "received",
    "x-disparo-ref",
];

/// Everything about a message that comes from the channel's configuration, checked once.
pub(super) struct Compose {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    headers: Vec<(HeaderName, String)>,
    name_field: Option<String>,
    unsubscribe: Option<Unsubscribe>,
    dkim: Option<DkimConfig>,
}

struct Unsubscribe {
    url: Option<String>,
    mailto: Option<String>,
    key: Option<Vec<u8>>,
}

impl Compose {
    pub(super) fn build(
        name: &str,
        c: &SmtpConfig,
        ctx: &BuildContext,
    ) -> Result<Compose, ChannelBuildError> {
        let invalid = |m: String| ChannelBuildError::invalid(name, m);
        let from: Mailbox = c.from.parse().map_err(|e| {
            invalid(format!(
                "`from: {}` is not an email address ({e}); write e.g. \"Shop <news@example.com>\"",
                c.from
            ))
        })?;
        let reply_to = match &c.reply_to {
            Some(r) => Some(r.parse::<Mailbox>().map_err(|e| {
                invalid(format!("`reply_to: {r}` is not an email address ({e}); write e.g. \"Help <help@example.com>\""))
            })?),
            None => None,
        };
        let mut headers = Vec::new();
        for (k, v) in &c.headers {
            let ftext = !k.is_empty() && k.bytes().all(|b| (33..=126).contains(&b) && b != b':');
            if !ftext {
                return Err(invalid(format!(
                    "`headers`: {k:?} is not a header name (printable ASCII, no spaces or colons)"
                )));
            }
            if STRUCTURAL.contains(&k.to_ascii_lowercase().as_str()) {
                return Err(invalid(format!(
                    "`headers`: {k} is written by disparo (or changes what the message is); set it with its own key (`from`, `reply_to`, `list_unsubscribe`, `dkim`) or leave it out"
                )));
            }
            if v.contains(['\r', '\n']) {
                // A line break in a value would start a header of the value's choosing.
                return Err(invalid(format!(
                    "`headers`: the value of {k} holds a line break; headers are one logical line (long ones are folded when sent)"
                )));
            }
            let name = HeaderName::new_from_ascii(k.clone())
                .map_err(|_| invalid(format!("`headers`: {k:?} is not a header name")))?;
            headers.push((name, v.clone()));
        }
        let unsubscribe = match &c.list_unsubscribe {
            None => None,
            Some(l) => {
                if l.url.is_none() && l.mailto.is_none() {
                    return Err(invalid("`list_unsubscribe` needs a `url` (https, for one-click) or a `mailto` address, or both".into()));
                }
                if let Some(u) = &l.url
                    && (!u.starts_with("https://")
                        || !u.is_ascii()
                        || u.contains([' ', '<', '>', ',']))
                {
                    return Err(invalid(format!(
                        "`list_unsubscribe.url: {u}` must be an https URL in ASCII without spaces, `<`, `>` or `,` (RFC 8058 requires https for one-click)"
                    )));
                }
                if let Some(m) = &l.mailto {
                    m.parse::<lettre::Address>().map_err(|e| {
                        invalid(format!(
                            "`list_unsubscribe.mailto: {m}` is not an email address ({e})"
                        ))
                    })?;
                }
                let needs_key = l.url.as_deref().is_some_and(|u| u.contains("{token}"));
                let key = match (&c.unsubscribe_secret_env, needs_key) {
                    (Some(var), _) => Some(
                        ctx.secret(name, "unsubscribe_secret_env", var)?
                            .expose()
                            .as_bytes()
                            .to_vec(),
                    ),
                    (None, true) => {
                        return Err(invalid("`list_unsubscribe.url` holds {token}: set `unsubscribe_secret_env` to the environment variable with the key that signs each recipient's token".into()));
                    }
                    (None, false) => None,
                };
                Some(Unsubscribe {
                    url: l.url.clone(),
                    mailto: l.mailto.clone(),
                    key,
                })
            }
        };
        let dkim = match &c.dkim {
            None => None,
            Some(d) => {
                let pem =
                    match (&d.private_key_env, &d.private_key_file) {
                        (Some(var), None) => ctx
                            .secret(name, "dkim.private_key_env", var)?
                            .expose()
                            .to_owned(),
                        (None, Some(path)) => {
                            let path = ctx.resolve(path);
                            std::fs::read_to_string(&path).map_err(|e| {
                                invalid(format!(
                                    "`dkim.private_key_file`: cannot read {}: {e}",
                                    path.display()
                                ))
                            })?
                        }
                        _ => return Err(invalid(
                            "`dkim` needs exactly one of `private_key_env` and `private_key_file`"
                                .into(),
                        )),
                    };
                let algorithm = match d.algorithm {
                    DkimAlgorithm::Rsa => DkimSigningAlgorithm::Rsa,
                    DkimAlgorithm::Ed25519 => DkimSigningAlgorithm::Ed25519,
                };
                // The key's own error text could quote it: say only what is expected.
                let key = DkimSigningKey::new(pem.trim(), algorithm).map_err(|_| {
                    invalid(match d.algorithm {
                        DkimAlgorithm::Rsa => "`dkim`: the private key is not an RSA key in PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`; convert a PKCS#8 key with `openssl rsa -traditional`)".to_owned(),
                        DkimAlgorithm::Ed25519 => "`dkim`: the private key is not an Ed25519 key (its 32 bytes in base64)".to_owned(),
                    })
                })?;
                let mut signed: Vec<HeaderName> =
                    ["From", "To", "Subject", "Date", "Message-ID", "Reply-To"]
                        .into_iter()
                        .map(HeaderName::new_from_ascii_str)
                        .collect();
                if unsubscribe.is_some() {
                    // RFC 8058 section 4: the signature must cover both.
                    signed.push(HeaderName::new_from_ascii_str("List-Unsubscribe"));
                    signed.push(HeaderName::new_from_ascii_str("List-Unsubscribe-Post"));
                }
                Some(DkimConfig::new(
                    d.selector.clone(),
                    d.domain.clone(),
                    key,
                    signed,
                    // Relaxed survives relays that refold headers or re-wrap lines.
                    DkimCanonicalization {
                        header: DkimCanonicalizationType::Relaxed,
                        body: DkimCanonicalizationType::Relaxed,
                    },
                ))
            }
        };
        Ok(Compose {
            from,
            reply_to,
            headers,
            name_field: c.name_field.clone(),
            unsubscribe,
            dkim,
        })
    }

    pub(super) fn from(&self) -> &Mailbox {
        &self.from
    }

    /// The email for `env`, signed when DKIM is configured.
    pub(super) fn message(
        &self,
        channel: &str,
        env: &Outgoing<'_>,
        message_id: String,
    ) -> Result<lettre::Message, SendError> {
        let permanent = |m: String| SendError::permanent(format!("channel `{channel}`: {m}"));
        let address: lettre::Address = env.address.parse().map_err(|e| {
            permanent(format!("{:?} is not an email address: {e}", env.address))
                .with_code("address")
        })?;
        let display = self
            .name_field
            .as_deref()
            .and_then(|f| field(env, f))
            .map(|n| n.replace(['\r', '\n'], " ").trim().to_owned())
            .filter(|n| !n.is_empty());
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(display, address))
            .message_id(Some(message_id));
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        if let Some(subject) = &env.content.subject {
            b = b.raw_header(header(
                HeaderName::new_from_ascii_str("Subject"),
                subject.replace(['\r', '\n'], " "),
            ));
        }
        for (name, value) in &self.headers {
            b = b.raw_header(header(name.clone(), value.clone()));
        }
        // Returned with the headers in a bounce (DSN) or a complaint (ARF): `disparo bounces
        // import` names the message by it even when the Message-ID was rewritten.
        if let Some(reference) = env.reference() {
            b = b.raw_header(header(
                HeaderName::new_from_ascii_str("X-Disparo-Ref"),
                reference,
            ));
        }
        if let Some(u) = &self.unsubscribe {
            let mut links = Vec::new();
            if let Some(url) = &u.url {
                let token = u.key.as_deref().map(|k| {
                    unsubscribe::token(
                        k,
                        &Subscriber {
                            campaign: env.campaign.to_owned(),
                            recipient: env.recipient.to_owned(),
                            address: env.address.to_owned(),
                        },
                    )
                });
                links.push(format!(
                    "<{}>",
                    url.replace("{token}", token.as_deref().unwrap_or(""))
                ));
            }
            if let Some(m) = &u.mailto {
                links.push(format!("<mailto:{m}?subject=unsubscribe>"));
            }
            b = b.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                links.join(", "),
            ));
            if u.url.is_some() {
                b = b.raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".into(),
                ));
            }
        }
        let built = match &env.content.html {
            Some(html) => b.multipart(MultiPart::alternative_plain_html(
                env.content.body.clone(),
                html.clone(),
            )),
            None => b.singlepart(SinglePart::plain(env.content.body.clone())),
        };
        let mut message = built.map_err(|e| permanent(format!("cannot build the email: {e}")))?;
        if let Some(d) = &self.dkim {
            message.sign(d);
        }
        Ok(message)
    }
}

/// A header lettre folds at spaces (and encodes when not ASCII); a value with a word too long
/// to fit a line (a 1,200-character URL) is written as RFC 2047 encoded words instead, which
/// may be split anywhere: otherwise the line would pass the 998 octets RFC 5322 allows and a
/// relay would refuse the message.
fn header(name: HeaderName, value: String) -> HeaderValue {
    const FOLDABLE: usize = 76;
    if value.split([' ', '\t']).all(|w| w.len() <= FOLDABLE) {
        return HeaderValue::new(name, value);
    }
    let encoded = encoded_words(&value);
    HeaderValue::dangerous_new_pre_encoded(name, value, encoded)
}

/// `value` as `=?utf-8?b?…?=` words of at most 45 bytes of text each (72 characters), one
/// per folded line; a decoder joins adjacent encoded words without the space between them.
fn encoded_words(value: &str) -> String {
    use base64::Engine as _;
    let mut words = Vec::new();
    let mut start = 0;
    while start < value.len() {
        let mut end = (start + 45).min(value.len());
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!(
            "=?utf-8?b?{}?=",
            base64::engine::general_purpose::STANDARD.encode(&value.as_bytes()[start..end])
        ));
        start = end;
    }
    words.join("\r\n ")
}

/// A recipient field as text, for the display name.
fn field(env: &Outgoing<'_>, name: &str) -> Option<String> {
    match env.vars.get(name)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

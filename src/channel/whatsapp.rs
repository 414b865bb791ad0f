//! `whatsapp_cloud`: template ("HSM") messages through Meta's WhatsApp Cloud API,
//! `POST {base_url}/{phone_number_id}/messages` with a bearer token.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use crate::message::WaParam;

use super::Outgoing;
use super::http::{self, retry_after, status_class};
use super::{
    BuildContext, ChannelBuildError, Delivered, ErrorClass, Redactor, Secret, SendError,
    WhatsappCloudConfig,
};

pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com/v23.0";

#[derive(Debug)]
pub struct WhatsappCloud {
    name: String,
    endpoint: String,
    /// `POST /{Phone-Number-ID}/marketing_messages`, for templates with
    /// `endpoint: marketing_messages` in front matter.
    marketing_endpoint: String,
    token: Secret,
    http: reqwest::Client,
    pub(crate) redactor: Redactor,
}

#[derive(Debug, Serialize)]
struct Payload<'a> {
    messaging_product: &'static str,
    recipient_type: &'static str,
    to: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    template: Template<'a>,
    /// The message key, echoed in status webhooks so they can be matched to the message.
    /// Not on `/marketing_messages`, whose description allows no such field.
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_opaque_callback_data: Option<String>,
}

#[derive(Debug, Serialize)]
struct Template<'a> {
    name: &'a str,
    language: Language<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<Component<'a>>,
}

#[derive(Debug, Serialize)]
struct Language<'a> {
    policy: &'static str,
    code: &'a str,
}

#[derive(Debug, Serialize)]
struct Component<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_type: Option<&'a str>,
    /// A string in Meta's description (`"0"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<String>,
    parameters: Vec<Cow<'a, WaParam>>,
}

impl<'a> Component<'a> {
    fn new(kind: &'static str, parameters: Vec<Cow<'a, WaParam>>) -> Self {
        Component {
            kind,
            sub_type: None,
            index: None,
            parameters,
        }
    }
}

/// Longest `biz_opaque_callback_data` Meta accepts; a longer message key is not sent.
const CALLBACK_DATA_LIMIT: usize = 512;

#[derive(Deserialize)]
struct Accepted {
    #[serde(default)]
    messages: Vec<AcceptedMessage>,
}

#[derive(Deserialize)]
struct AcceptedMessage {
    id: String,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_data: Option<GraphErrorData>,
}

#[derive(Deserialize)]
struct GraphErrorData {
    #[serde(default)]
    details: Option<String>,
}

impl WhatsappCloud {
    pub(crate) fn build(
        name: &str,
        c: &WhatsappCloudConfig,
        ctx: &BuildContext,
    ) -> Result<WhatsappCloud, ChannelBuildError> {
        let base = http::check_url(
            name,
            "base_url",
            c.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?;
        let id = c.phone_number_id.trim();
        if id.is_empty() || !id.chars().all(|ch| ch.is_ascii_alphanumeric()) {
            return Err(ChannelBuildError::invalid(
                name,
                format!(
                    "`phone_number_id: {id:?}` must be the number's id at Meta (digits), not the phone number"
                ),
            ));
        }
        let token = ctx.secret(name, "token_env", &c.token_env)?;
        let proxy = ctx.proxy_credentials();
        let redactor = Redactor::new(
            std::iter::once(token.expose()).chain(proxy.iter().map(String::as_str)),
            &[],
        );
        Ok(WhatsappCloud {
            name: name.into(),
            endpoint: format!("{base}/{id}/messages"),
            marketing_endpoint: format!("{base}/{id}/marketing_messages"),
            token,
            http: ctx.http.clone(),
            redactor,
        })
    }

    fn payload<'a>(&self, env: &'a Outgoing<'a>) -> Result<Payload<'a>, SendError> {
        let wa = env.content.whatsapp.as_ref().ok_or_else(|| {
            SendError::breaker(format!(
                "channel `{}` sends WhatsApp templates, but the message has no `whatsapp:` part: add `whatsapp: {{ name, language, body }}` to the template's front matter",
                self.name
            ))
            .with_code("no_template")
        })?;
        let mut components = Vec::new();
        if let Some(h) = &wa.header {
            components.push(Component::new("header", vec![Cow::Borrowed(h)]));
        }
        if !wa.body.is_empty() || !wa.body_params.is_empty() {
            let plain = wa.body.iter().map(|text| {
                Cow::Owned(WaParam::Text {
                    parameter_name: None,
                    text: text.clone(),
                })
            });
            let rich = wa.body_params.iter().map(Cow::Borrowed);
            components.push(Component::new("body", plain.chain(rich).collect()));
        }
        for b in &wa.buttons {
            components.push(Component {
                kind: "button",
                sub_type: Some(&b.sub_type),
                index: Some(b.index.to_string()),
                parameters: vec![Cow::Borrowed(&b.parameter)],
            });
        }
        // The callback reference (key and row) when the message comes from the store, so a
        // status names its message even if the answer to this send is lost; else the key.
        let callback = Some(env.reference().unwrap_or_else(|| env.message_id.to_owned()))
            .filter(|c| !wa.marketing_endpoint && c.chars().count() <= CALLBACK_DATA_LIMIT);
        Ok(Payload {
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to: env.address,
            kind: "template",
            template: Template {
                name: &wa.name,
                language: Language {
                    policy: "deterministic",
                    code: &wa.language,
                },
                components,
            },
            biz_opaque_callback_data: callback,
        })
    }

    /// `/marketing_messages` for a template that asks for it, else `/messages`.
    fn url(&self, env: &Outgoing<'_>) -> &str {
        match &env.content.whatsapp {
            Some(wa) if wa.marketing_endpoint => &self.marketing_endpoint,
            _ => &self.endpoint,
        }
    }

    pub async fn send(&self, env: &Outgoing<'_>) -> Result<Delivered, SendError> {
        let body = serde_json::to_vec(&self.payload(env)?)
            .map_err(|e| SendError::permanent(format!("cannot encode the request: {e}")))?;
        let request = self
            .http
            .post(self.url(env))
            .header(AUTHORIZATION, format!("Bearer {}", self.token.expose()))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let answer = http::exchange(&format!("channel `{}`", self.name), request).await?;
        let status = answer.status;
        let wait = retry_after(&answer.headers);
        if status.is_success() {
            // Accepted: an unreadable body must not turn into a retry (that would send twice).
            let provider_id = serde_json::from_slice::<Accepted>(&answer.body)
                .ok()
                .and_then(|a| a.messages.into_iter().next())
                .map(|m| m.id);
            return Ok(http::accepted(
                &self.name,
                &answer,
                provider_id,
                Some("its body has no `messages[0].id`"),
            ));
        }
        let text = String::from_utf8_lossy(&answer.body);
        Err(self.error(status, wait, &text))
    }

    fn error(
        &self,
        status: reqwest::StatusCode,
        wait: Option<std::time::Duration>,
        text: &str,
    ) -> SendError {
        let graph = serde_json::from_str::<GraphErrorBody>(text)
            .ok()
            .map(|b| b.error);
        let code = graph.as_ref().and_then(|g| g.code);
        let class = code
            .and_then(|c| classify_code(c, wait))
            .unwrap_or_else(|| status_class(status, wait));
        let detail = match &graph {
            Some(g) => {
                let mut d = g.message.clone().unwrap_or_default();
                if let Some(extra) = g.error_data.as_ref().and_then(|e| e.details.as_deref()) {
                    d.push_str(" (");
                    d.push_str(extra);
                    d.push(')');
                }
                d
            }
            None => text.to_string(),
        };
        let detail = self.redactor.excerpt(&detail, 300);
        let code_text = code.map_or_else(|| format!("HTTP {}", status.as_u16()), |c| c.to_string());
        SendError {
            class,
            message: format!(
                "channel `{}`: WhatsApp Cloud API answered HTTP {} (error {code_text}): {detail}",
                self.name,
                status.as_u16()
            ),
            code: Some(code_text),
        }
    }

    pub fn preview_request(&self, env: &Outgoing<'_>) -> serde_json::Value {
        let body = match self.payload(env) {
            Ok(p) => serde_json::to_value(&p).unwrap_or_default(),
            Err(e) => serde_json::json!({ "error": e.message }),
        };
        http::preview(
            "POST",
            self.url(env),
            &[
                ("Authorization", "Bearer ***".into()),
                ("Content-Type", "application/json".into()),
            ],
            body,
        )
    }
}

/// Graph API error codes with a meaning of their own (Cloud API error codes reference);
/// `None` leaves the class to the HTTP status.
fn classify_code(code: i64, retry_after: Option<std::time::Duration>) -> Option<ErrorClass> {
    Some(match code {
        // Throughput, pair rate (one message per ~6 s to a user), spam rate, app and account
        // rate limits, temporary service problems.
        130429 | 131056 | 131048 | 4 | 80007 | 131000 | 131016 | 133004 | 1 | 2 => {
            ErrorClass::Transient { retry_after }
        }
        // Undeliverable to this user.
        131026 => ErrorClass::Recipient { suppress: false },
        // The user stopped marketing messages: never try them again.
        131050 => ErrorClass::Recipient { suppress: true },
        // Every message of the campaign fails alike: parameter count mismatch, template or
        // language not found, template paused or disabled, token expired or invalid,
        // permissions, number not registered, account locked, payment problem.
        132000
        | 132001
        | 132015
        | 132016
        | 190
        | 0
        | 3
        | 10
        | 200..=299
        | 133010
        | 131031
        | 131042 => ErrorClass::Breaker,
        _ => return None,
    })
}

//! `disparo serve` as a library call: which receipts the server accepts, with which secrets
//! (read here from the environment variables the channels name), then the server itself.

use std::sync::Arc;

use jiff::Timestamp;
use tokio::net::TcpListener;

use super::Error;
use crate::channel::ChannelConfig;
use crate::diag::Problem;
use crate::model::Project;
use crate::serve::{Limits, ServeConfig, ServeSummary};
use crate::store::Store;

/// The server's configuration from `disparo.yaml`: every channel that can send receipts
/// contributes its secret. A named variable that is not set is a problem (every one is
/// reported at once), so a server never starts believing unsigned requests.
pub fn config(
    project: &Project,
    env: &dyn Fn(&str) -> Option<String>,
    public_url: Option<String>,
    limits: Limits,
) -> Result<ServeConfig, Error> {
    let mut config = ServeConfig {
        public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
        limits,
        ..ServeConfig::default()
    };
    let mut problems = Vec::new();
    let mut bad_secrets = Vec::new();
    let mut secret = |channel: &str, key: &str, var: &str| -> Option<String> {
        match env(var) {
            Some(v) if !v.is_empty() => Some(v),
            _ => {
                let mut p = Problem::new(format!(
                    "channel `{channel}`: environment variable {var} (named by `{key}`) is not set or empty"
                ))
                .field(format!("channels.{channel}.{key}"))
                .hint(format!("export {var} before `disparo serve`, or remove `{key}` from the channel"));
                if let Some(path) = &project.config_path {
                    p = p.in_file(path);
                }
                problems.push(p);
                None
            }
        }
    };
    for (name, channel) in &project.config.channels {
        match channel {
            ChannelConfig::WhatsappCloud(c) => {
                if let Some(var) = &c.app_secret_env
                    && let Some(s) = secret(name, "app_secret_env", var)
                {
                    config.whatsapp_app_secrets.push(s.into_bytes());
                }
                if let Some(var) = &c.verify_token_env
                    && let Some(s) = secret(name, "verify_token_env", var)
                {
                    config.whatsapp_verify_token = Some(s);
                }
            }
            ChannelConfig::Twilio(c) => {
                if let Some(s) = secret(name, "auth_token_env", &c.auth_token_env) {
                    config.twilio_auth_tokens.push(s.into_bytes());
                }
            }
            ChannelConfig::Webhook(c) => {
                if let Some(var) = &c.secret_env
                    && let Some(s) = secret(name, "secret_env", var)
                    && let Err(e) = config.add_webhook_secret(&s)
                {
                    bad_secrets.push(
                        Problem::new(format!("channel `{name}`: the secret in {var} {e}"))
                            .field(format!("channels.{name}.secret_env")),
                    );
                }
            }
            ChannelConfig::Smtp(c) => {
                if let Some(var) = &c.unsubscribe_secret_env
                    && let Some(s) = secret(name, "unsubscribe_secret_env", var)
                {
                    config.unsubscribe_keys.push(s.into_bytes());
                }
            }
            _ => {}
        }
    }
    problems.append(&mut bad_secrets);
    if !problems.is_empty() {
        return Err(Error::Invalid(problems));
    }
    if config.sources().is_empty() {
        let mut p = Problem::new("no channel in disparo.yaml can send receipts to `disparo serve`")
            .hint("set `app_secret_env` on a whatsapp_cloud channel, define a twilio channel, set `secret_env` on a webhook channel or `unsubscribe_secret_env` on an smtp channel (docs/receipts.md)");
        if let Some(path) = &project.config_path {
            p = p.in_file(path);
        }
        return Err(Error::Invalid(vec![p]));
    }
    Ok(config)
}

/// Runs the server on `listener` until `shutdown`; `fixed_now` pins the receipt clock
/// (`--now`), else the real one.
pub async fn run(
    store: Box<dyn Store>,
    listener: TcpListener,
    config: ServeConfig,
    fixed_now: Option<Timestamp>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<ServeSummary, Error> {
    let clock: Arc<dyn Fn() -> Timestamp + Send + Sync> = match fixed_now {
        Some(t) => Arc::new(move || t),
        None => Arc::new(Timestamp::now),
    };
    crate::serve::serve(Arc::from(store), listener, config, clock, shutdown)
        .await
        .map_err(|e| Error::Internal(format!("the server failed: {e}")))
}

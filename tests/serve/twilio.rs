//! Twilio's status callbacks and incoming messages through `disparo serve`, signed as Twilio
//! signs them (computed here by Python's standard library from Twilio's description, not by
//! disparo's code).

use serde_json::json;

use super::{Server, client, count};
use crate::harness::{PLAN_NOW_MONDAY, Project, run_async};
use crate::support::http::{Reply, TestServer};

const TOKEN: &str = "tw-auth-token-0123456789abcdef";
const PUBLIC: &str = "https://hooks.example.com";

fn project(base_url: &str) -> std::sync::Arc<Project> {
    project_with(
        base_url,
        &format!(", status_callback: '{PUBLIC}/twilio/status'"),
        None,
    )
}

/// The project with `extra` keys on the twilio channel and `DISPARO_PUBLIC_URL` set or not.
fn project_with(base_url: &str, extra: &str, public_url: Option<&str>) -> std::sync::Arc<Project> {
    let mut p = Project::empty()
        .env("TW_SID", crate::support::prism::TWILIO_SID)
        .env("TW_TOKEN", TOKEN);
    if let Some(u) = public_url {
        p = p.env("DISPARO_PUBLIC_URL", u);
    }
    p.file(
        "disparo.yaml",
        &format!(
            "timezone: America/Sao_Paulo\nchannels:\n  sms: {{ type: twilio, account_sid_env: TW_SID, auth_token_env: TW_TOKEN, from: '+15550001111', base_url: '{base_url}'{extra} }}\n"
        ),
    )
    .file("campaigns/c.yaml", "channel: sms\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n")
    .file("templates/t.hbs", "Oi {{first_name}}")
    .file("a.csv", "id,first_name,phone\nr0,Ana,+5511920000000\n");
    p.ok(&["-q", "--now", PLAN_NOW_MONDAY, "plan", "c"]);
    std::sync::Arc::new(p)
}

/// Twilio's X-Twilio-Signature of a POST of `form` to `url`.
fn signature(url: &str, form: &[(String, String)]) -> String {
    crate::support::require_python(&["hmac"]);
    let script = "import sys, json, hmac, hashlib, base64\n\
        url, token = sys.argv[1], sys.argv[2]\n\
        params = json.load(sys.stdin)\n\
        data = url + ''.join(k + v for k, v in sorted(params))\n\
        print(base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode())";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, url, TOKEN])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(form).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn form(text: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(text).unwrap()
}

async fn post(
    server: &Server,
    path_and_query: &str,
    body: &[(String, String)],
    sig: &str,
) -> (u16, String) {
    let r = client()
        .post(server.url(path_and_query))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", sig)
        .body(serde_urlencoded::to_string(body).unwrap())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_callbacks_come_back_through_the_url_the_adapter_gave_twilio() {
    let api = TestServer::start(vec![Reply::json(
        201,
        json!({"sid": "SMaaaabbbbccccdddd0000111122223333", "status": "queued"}),
    )])
    .await;
    let p = project(&api.url(""));
    let o = run_async(&p, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let sent = form(&api.requests()[0].text());
    let callback = sent
        .iter()
        .find(|(k, _)| k == "StatusCallback")
        .map(|(_, v)| v.clone())
        .expect("StatusCallback set");
    assert!(
        callback.starts_with(&format!("{PUBLIC}/twilio/status?disparo_key=m-")),
        "{callback}"
    );
    assert!(callback.contains("&disparo_ref=m-"), "{callback}");
    let path = callback.strip_prefix(PUBLIC).unwrap().to_owned();

    let server = Server::start(&p, &["--public-url", PUBLIC]);
    let mut body = form(&super::fixture("twilio_status_delivered.form"));
    for (k, v) in body.iter_mut() {
        if k == "MessageSid" || k == "SmsSid" {
            *v = "SMaaaabbbbccccdddd0000111122223333".into();
        }
    }
    // Signed for another URL (the signature covers the query too): refused.
    let wrong = signature(&format!("{PUBLIC}/twilio/status"), &body);
    assert_eq!(post(&server, &path, &body, &wrong).await.0, 401);
    assert_eq!(count(&p, "SELECT COUNT(*) FROM receipts"), 0);
    let sig = signature(&callback, &body);
    let (code, text) = post(&server, &path, &body, &sig).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM delivery WHERE status = 'delivered' AND delivered_at IS NOT NULL"
        ),
        1
    );
    // Twilio retries the callback: stored once.
    assert!(
        post(&server, &path, &body, &sig)
            .await
            .1
            .contains("duplicate")
    );
    assert_eq!(count(&p, "SELECT COUNT(*) FROM receipts"), 1);
}

/// With no `status_callback` of its own, the channel points Twilio at `disparo serve`'s
/// endpoint under `DISPARO_PUBLIC_URL` (the variable `serve --public-url` reads too); with
/// neither, Twilio is given no callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_url_gives_twilio_the_serve_endpoint_as_callback() {
    let reply = || {
        Reply::json(
            201,
            json!({"sid": "SMaaaabbbbccccdddd0000111122223333", "status": "queued"}),
        )
    };
    let callback_of = |api: &TestServer| {
        form(&api.requests()[0].text())
            .into_iter()
            .find(|(k, _)| k == "StatusCallback")
            .map(|(_, v)| v)
    };
    let api = TestServer::start(vec![reply()]).await;
    let p = project_with(&api.url(""), "", Some("https://hooks.example.com/"));
    let o = run_async(&p, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let cb = callback_of(&api).expect("StatusCallback set from DISPARO_PUBLIC_URL");
    assert!(
        cb.starts_with(&format!("{PUBLIC}/twilio/status?disparo_key=m-")),
        "{cb}"
    );
    assert!(cb.contains("&disparo_ref=m-"), "{cb}");

    let api = TestServer::start(vec![reply()]).await;
    let p = project_with(&api.url(""), "", None);
    let o = run_async(&p, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(callback_of(&api), None);

    // A public URL that is no URL is the channel's error, named by the variable.
    let p = project_with("http://127.0.0.1:9", "", Some("hooks example"));
    let o = p.expect(2, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]);
    assert!(
        o.stderr
            .contains("`DISPARO_PUBLIC_URL: hooks example/twilio/status` is not a URL"),
        "{}",
        o.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_reply_suppresses_the_number_and_start_lifts_only_that() {
    let p = project("http://127.0.0.1:9");
    let server = Server::start(&p, &["--public-url", PUBLIC]);
    let url = format!("{PUBLIC}/twilio/inbound");
    let stop = form(&super::fixture("twilio_inbound_stop.form"));
    let (code, text) = post(&server, "/twilio/inbound", &stop, &signature(&url, &stop)).await;
    assert_eq!(code, 200);
    assert!(
        text.contains("<Response></Response>"),
        "empty TwiML: {text}"
    );
    let list = p.ok(&["--format", "json", "suppress", "list"]).json_lines();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["address"], "+5511920000003");
    assert_eq!(list[0]["source"], "twilio");
    // An ordinary reply changes nothing; a forged STOP is refused.
    let mut hello = stop.clone();
    for (k, v) in hello.iter_mut() {
        match k.as_str() {
            "Body" => *v = "Parar de mandar? Não, adorei!".into(),
            "MessageSid" | "SmsSid" | "SmsMessageSid" => *v = "SM-hello".into(),
            "From" => *v = "+5511920000009".into(),
            _ => {}
        }
    }
    assert_eq!(
        post(&server, "/twilio/inbound", &hello, &signature(&url, &hello))
            .await
            .0,
        200
    );
    assert_eq!(
        post(&server, "/twilio/inbound", &stop, "c2lnbmF0dXJl")
            .await
            .0,
        401
    );
    assert_eq!(
        p.ok(&["--format", "json", "suppress", "list"])
            .json_lines()
            .len(),
        1
    );
    // START from the same number lifts the STOP.
    let mut start = stop.clone();
    for (k, v) in start.iter_mut() {
        match k.as_str() {
            "Body" => *v = "START".into(),
            "MessageSid" | "SmsSid" | "SmsMessageSid" => *v = "SM-start".into(),
            _ => {}
        }
    }
    assert_eq!(
        post(&server, "/twilio/inbound", &start, &signature(&url, &start))
            .await
            .0,
        200
    );
    assert!(
        p.ok(&["--format", "json", "suppress", "list"])
            .json_lines()
            .is_empty()
    );
}

//! One-click unsubscribe (RFC 8058) end to end: an email sent through a real SMTP server
//! carries the link in its `List-Unsubscribe` header and in its body (`{{unsubscribe_url}}`),
//! and `disparo serve` honours the POST a mailbox provider sends for it.

use super::{Server, client, count};
use crate::harness::{PLAN_NOW_MONDAY, Project, run_async};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_in_the_email_unsubscribes_by_post_and_only_shows_a_page_on_get() {
    let mut smtp = crate::support::SmtpServer::start(None, None).await;
    let p = Project::empty().env("UNSUB_KEY", "unsubscribe-signing-key");
    p.file(
        "disparo.yaml",
        &format!(
            "timezone: America/Sao_Paulo\nchannels:\n  mail: {{ type: smtp, host: 127.0.0.1, port: {}, tls: none, from: 'Loja <news@loja.example>', list_unsubscribe: {{ url: 'https://hooks.example.com/unsubscribe/{{token}}' }}, unsubscribe_secret_env: UNSUB_KEY }}\n",
            smtp.port
        ),
    )
    .file("campaigns/c.yaml", "channel: mail\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n")
    .file("templates/t.hbs", "---\nsubject: Oferta\n---\nOi {{name}}! Para sair: {{unsubscribe_url}}\n")
    .file("a.csv", "id,name,email\nc1,Ana,ana@example.com\n");
    p.ok(&["-q", "--now", PLAN_NOW_MONDAY, "plan", "c"]);
    let p = std::sync::Arc::new(p);
    let o = run_async(&p, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mail = smtp.received().await;
    let header = mail.headers["list-unsubscribe"].clone();
    let url = header.trim_matches(|c| c == '<' || c == '>').to_owned();
    assert!(
        url.starts_with("https://hooks.example.com/unsubscribe/v1."),
        "{header}"
    );
    assert_eq!(
        mail.headers["list-unsubscribe-post"],
        "List-Unsubscribe=One-Click"
    );
    assert!(
        mail.data.contains(&url) || mail.parts.iter().any(|part| part.text.contains(&url)),
        "the body carries the same link: {}",
        mail.data
    );
    assert!(
        mail.headers.contains_key("x-disparo-ref"),
        "bounces can name the message"
    );
    let path = url.strip_prefix("https://hooks.example.com").unwrap();

    let server = Server::start(&p, &[]);
    // A link scanner (or the reader) opening the link: a page, nobody unsubscribed.
    let page = client().get(server.url(path)).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("a***@example.com") && html.contains("method=\"post\""),
        "{html}"
    );
    assert!(
        !html.contains("ana@example.com"),
        "the page does not show the whole address"
    );
    assert!(
        p.ok(&["--format", "json", "suppress", "list"])
            .json_lines()
            .is_empty()
    );
    // The POST Gmail sends on the reader's behalf: no cookies, the RFC 8058 body.
    let r = client()
        .post(server.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("unsubscribed"));
    // RFC 8058's own example sends multipart/form-data; a second click is the same opt-out.
    let r = client()
        .post(server.url(path))
        .header("Content-Type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XYZ--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let list = p.ok(&["--format", "json", "suppress", "list"]).json_lines();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0]["address"].as_str(), list[0]["source"].as_str()),
        (Some("ana@example.com"), Some("unsubscribe"))
    );
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM receipts WHERE event = 'opted_out'"
        ),
        1
    );
    assert_eq!(
        count(
            &p,
            "SELECT COUNT(*) FROM delivery WHERE opted_out_at IS NOT NULL"
        ),
        1,
        "traced to the message"
    );
    // A token changed in one character, or made with another key: refused.
    let mut forged = path.to_owned();
    forged.pop();
    forged.push('x');
    let r = client()
        .post(server.url(&forged))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    drop(server);
    // Every later campaign skips the address.
    p.file(
        "campaigns/next.yaml",
        "channel: mail\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-12-07T09:00 }\n",
    );
    p.ok(&["-q", "--now", "2026-12-03T11:00:00Z", "plan", "next"]);
    let next: Vec<_> = p
        .messages()
        .into_iter()
        .filter(|m| m["campaign"] == "next")
        .collect();
    assert_eq!(next[0]["state"], "skipped");
}

#[test]
fn a_template_with_unsubscribe_url_needs_a_channel_that_can_make_it() {
    let p = Project::empty();
    p.file("disparo.yaml", "channels:\n  sms: { type: console }\n")
        .file(
            "campaigns/c.yaml",
            "channel: sms\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n",
        )
        .file("templates/t.hbs", "Sair: {{unsubscribe_url}}")
        .file("a.csv", "id,phone\nc1,+5511920000000\n");
    let o = p.expect(2, &["validate", "c"]);
    assert!(
        o.stderr.contains("campaigns/c.yaml") && o.stderr.contains("uses {{unsubscribe_url}}"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("reply STOP"), "{}", o.stderr);
}

//! `smtp` against a real SMTP server (aiosmtpd) on loopback.

use super::*;
use crate::support::{build, context, envelope};
use disparo::channel::ErrorClass;

#[tokio::test]
async fn smtp_plain_text_message_with_login() {
    let mut server = support::SmtpServer::start(None, Some((SMTP_USER, SMTP_PASS))).await;
    let channel = build(
        &format!(
            "{{ type: smtp, host: 127.0.0.1, port: {}, tls: none, username_env: SMTP_USER, password_env: SMTP_PASS, from: 'Loja <news@loja.example>' }}",
            server.port
        ),
        &context(
            &root(),
            &[("SMTP_USER", SMTP_USER), ("SMTP_PASS", SMTP_PASS)],
        ),
    );
    let env = envelope("ana@example.com");
    let delivered = channel.send(&env).await.expect("sent");
    assert_eq!(
        delivered.provider_id.as_deref(),
        Some("<bf26-ana-0@loja.example>")
    );

    let got = server.received().await;
    assert_eq!(got.mail_from, "news@loja.example");
    assert_eq!(got.rcpt_tos, vec!["ana@example.com"]);
    assert!(!got.tls);
    assert_eq!(got.login.as_deref(), Some(SMTP_USER));
    assert_eq!(got.headers["from"], "Loja <news@loja.example>");
    assert_eq!(got.headers["to"], "ana@example.com");
    assert_eq!(got.headers["subject"], "Ana, sua oferta chegou");
    assert_eq!(got.headers["message-id"], "<bf26-ana-0@loja.example>");
    assert_eq!(got.content_type, "text/plain");
    assert_eq!(got.parts.len(), 1);
    assert_eq!(
        got.parts[0].text.trim_end(),
        "Olá Ana! Tom & Jerry: use o cupom BF26."
    );

    let preview = channel.preview_request(&env);
    assert_eq!(preview["rcpt_to"], "ana@example.com");
    assert!(
        preview["message"]
            .as_str()
            .unwrap()
            .contains("Message-ID: <bf26-ana-0@loja.example>")
    );
}

#[tokio::test]
async fn smtp_starttls_multipart_text_and_html() {
    let certs = support::Certs::generate();
    let mut server = support::SmtpServer::start(Some(&certs), Some((SMTP_USER, SMTP_PASS))).await;
    let ctx = context(
        &root(),
        &[("SMTP_USER", SMTP_USER), ("SMTP_PASS", SMTP_PASS)],
    );
    let channel = build(
        &format!(
            "{{ type: smtp, host: 127.0.0.1, port: {}, tls: starttls, ca_cert: '{}', username_env: SMTP_USER, password_env: SMTP_PASS, from: 'news@loja.example' }}",
            server.port,
            certs.ca().display()
        ),
        &ctx,
    );
    let mut env = envelope("ana@example.com");
    env.content.html = Some("<p>Olá Ana! Tom &amp; Jerry</p>".into());
    channel.send(&env).await.expect("sent over STARTTLS");

    let got = server.received().await;
    assert!(got.tls, "the message went over TLS");
    assert_eq!(got.login.as_deref(), Some(SMTP_USER));
    assert_eq!(got.content_type, "multipart/alternative");
    let types: Vec<&str> = got.parts.iter().map(|p| p.content_type.as_str()).collect();
    assert_eq!(types, vec!["text/plain", "text/html"]);
    assert_eq!(
        got.parts[0].text.trim_end(),
        "Olá Ana! Tom & Jerry: use o cupom BF26."
    );
    assert_eq!(
        got.parts[1].text.trim_end(),
        "<p>Olá Ana! Tom &amp; Jerry</p>"
    );

    // Without trusting the test CA the certificate is refused, and that is not retried.
    let untrusting = build(
        &format!(
            "{{ type: smtp, host: 127.0.0.1, port: {}, tls: starttls, username_env: SMTP_USER, password_env: SMTP_PASS, from: 'news@loja.example' }}",
            server.port
        ),
        &ctx,
    );
    let err = untrusting.send(&env).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Breaker, "{err}");
}

#[tokio::test]
async fn smtp_wrong_password_trips_the_breaker_without_leaking_it() {
    let server = support::SmtpServer::start(None, Some((SMTP_USER, SMTP_PASS))).await;
    let channel = build(
        &format!(
            "{{ type: smtp, host: 127.0.0.1, port: {}, tls: none, username_env: SMTP_USER, password_env: SMTP_PASS, from: 'news@loja.example' }}",
            server.port
        ),
        &context(
            &root(),
            &[
                ("SMTP_USER", SMTP_USER),
                ("SMTP_PASS", "wrong-password-777"),
            ],
        ),
    );
    let err = channel
        .send(&envelope("ana@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Breaker, "{err}");
    assert_eq!(err.code.as_deref(), Some("535"));
    assert!(!err.message.contains("wrong-password-777"));
}

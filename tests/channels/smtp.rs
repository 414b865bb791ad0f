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

fn plain_smtp(port: u16, extra: &str, env: &[(&str, &str)]) -> Channel {
    build(
        &format!(
            "{{ type: smtp, host: 127.0.0.1, port: {port}, tls: none, from: 'Loja <news@loja.example>'{extra} }}"
        ),
        &context(&root(), env),
    )
}

/// A 1,200-character subject and a long custom header went out as single lines, which a
/// strict relay refuses (RFC 5322: 998 octets) and the message failed permanently. Folded,
/// they arrive and read back equal.
#[tokio::test]
async fn smtp_long_subject_and_header_are_folded_and_read_back_equal() {
    let mut server = support::SmtpServer::start(None, None).await;
    let long_header = "growth ".repeat(200).trim_end().to_owned();
    let channel = plain_smtp(
        server.port,
        &format!(", headers: {{ X-Campaign-Note: '{long_header}' }}"),
        &[],
    );
    let mut env = envelope("ana@example.com");
    let subject = "Ofertas de Black Friday para você ".repeat(36);
    let subject = subject.trim_end().to_owned();
    assert!(subject.len() > 1200);
    env.content.subject = Some(subject.clone());
    channel
        .send(&env)
        .await
        .expect("the relay accepts a folded message");
    let got = server.received().await;
    assert_eq!(got.headers["subject"], subject);
    assert_eq!(got.headers["x-campaign-note"], long_header);
    assert!(got.data.split("\r\n").all(|l| l.len() <= 998));

    // One word longer than a line cannot be folded at a space: encoded words split it.
    let word = format!("https://loja.example/{}", "a".repeat(1200));
    env.content.subject = Some(word.clone());
    env.message_id = "bf26:ana:1".into();
    channel
        .send(&env)
        .await
        .expect("the relay accepts a long word, split");
    let got = server.received().await;
    assert_eq!(got.headers["subject"], word);
    assert!(got.data.split("\r\n").all(|l| l.len() <= 998));
}

/// Reply-To, custom headers, the recipient's name in `To` (non-ASCII, encoded) and the
/// List-Unsubscribe pair of RFC 8058 with a token that verifies for exactly this recipient.
#[tokio::test]
async fn smtp_headers_a_campaign_needs_arrive_as_configured() {
    let mut server = support::SmtpServer::start(None, None).await;
    let channel = plain_smtp(
        server.port,
        ", reply_to: 'Atendimento <ajuda@loja.example>', headers: { X-Team: growth }, name_field: full_name, list_unsubscribe: { url: 'https://loja.example/u/{token}', mailto: sair@loja.example }, unsubscribe_secret_env: UNSUB_KEY",
        &[("UNSUB_KEY", "unsub-secret-7788")],
    );
    let mut env = envelope("ana@example.com");
    env.vars
        .insert("full_name".into(), "João \"Jô\" Souza".into());
    channel.send(&env).await.expect("sent");
    let got = server.received().await;
    assert_eq!(got.headers["reply-to"], "Atendimento <ajuda@loja.example>");
    assert_eq!(got.headers["x-team"], "growth");
    assert_eq!(
        got.headers["to"],
        "\"João \\\"Jô\\\" Souza\" <ana@example.com>"
    );
    assert_eq!(
        got.headers["list-unsubscribe-post"],
        "List-Unsubscribe=One-Click"
    );
    let list = &got.headers["list-unsubscribe"];
    let token = list
        .strip_prefix("<https://loja.example/u/")
        .and_then(|r| r.split_once('>'))
        .map(|(t, _)| t)
        .unwrap_or_else(|| panic!("unexpected List-Unsubscribe: {list}"));
    assert!(
        list.ends_with(", <mailto:sair@loja.example?subject=unsubscribe>"),
        "{list}"
    );
    let who = disparo::unsubscribe::verify(b"unsub-secret-7788", token).expect("token verifies");
    assert_eq!(
        (
            who.campaign.as_str(),
            who.recipient.as_str(),
            who.address.as_str()
        ),
        ("black-friday", "ana", "ana@example.com")
    );
    assert!(!got.data.contains("unsub-secret-7788"));
}

#[test]
fn smtp_config_refuses_header_injection_and_structural_headers() {
    let ctx = context(&root(), &[]);
    for (extra, says) in [
        (", headers: { Subject: x }", "written by disparo"),
        (
            ", headers: { 'X-A': \"a\\r\\nBcc: evil@example.com\" }",
            "line break",
        ),
        (", headers: { 'Bad Name': x }", "not a header name"),
        (", reply_to: 'not an address'", "reply_to"),
        (", list_unsubscribe: { url: 'http://x.example/u' }", "https"),
        (
            ", list_unsubscribe: { url: 'https://x.example/u/{token}' }",
            "unsubscribe_secret_env",
        ),
        (", list_unsubscribe: {}", "needs a `url`"),
        (
            ", dkim: { selector: s1, domain: loja.example, private_key_env: K }",
            "K",
        ),
    ] {
        let config = support::config(&format!(
            "{{ type: smtp, host: 127.0.0.1, port: 2525, tls: none, from: 'news@loja.example'{extra} }}"
        ));
        let err = Channel::build("mail", &config, &ctx)
            .expect_err(extra)
            .to_string();
        assert!(err.contains(says), "{extra}: {err}");
    }
    let ctx = context(
        &root(),
        &[(
            "K",
            "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----",
        )],
    );
    let config = support::config(
        "{ type: smtp, host: 127.0.0.1, tls: none, from: 'news@loja.example', dkim: { selector: s1, domain: loja.example, private_key_env: K } }",
    );
    let err = Channel::build("mail", &config, &ctx)
        .expect_err("bad key")
        .to_string();
    assert!(
        err.contains("PKCS#1") && !err.contains("not a key"),
        "{err}"
    );
}

/// An RSA key made for the test; the server verifies the signature with dkimpy against the
/// public key as its DNS TXT record would publish it.
#[tokio::test]
async fn smtp_dkim_signature_verifies_at_the_receiver() {
    support::require_python(&["cryptography", "dkim"]);
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import base64, sys
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import serialization as s
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
open(sys.argv[1] + "/key.pem", "wb").write(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.TraditionalOpenSSL, s.NoEncryption()))
pub = k.public_key().public_bytes(s.Encoding.DER, s.PublicFormat.SubjectPublicKeyInfo)
open(sys.argv[1] + "/txt", "wb").write(b"v=DKIM1; k=rsa; p=" + base64.b64encode(pub))
"#,
        )
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mut server =
        support::SmtpServer::start_with(None, None, Some(&dir.path().join("txt"))).await;
    let key = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
    let channel = plain_smtp(
        server.port,
        ", reply_to: ajuda@loja.example, list_unsubscribe: { mailto: sair@loja.example }, dkim: { selector: s1, domain: loja.example, private_key_env: DKIM_KEY }",
        &[("DKIM_KEY", key.as_str())],
    );
    let mut env = envelope("ana@example.com");
    env.content.subject = Some("Uma oferta com acentuação e um assunto longo ".repeat(5));
    channel.send(&env).await.expect("sent");
    let got = server.received().await;
    assert!(got.headers["dkim-signature"].contains("d=loja.example"));
    assert_eq!(got.dkim, Some(true), "DKIM did not verify:\n{}", got.data);
}

/// 30 messages, at most 3 in flight (as the dispatcher bounds a channel's concurrency), go
/// over at most 3 connections instead of 30.
#[tokio::test]
async fn smtp_reuses_connections_up_to_the_channels_concurrency() {
    use futures_util::StreamExt;
    let mut server = support::SmtpServer::start(None, None).await;
    let channel = plain_smtp(server.port, ", concurrency: 3", &[]);
    let envs: Vec<_> = (0..30)
        .map(|i| {
            let mut e = envelope(&format!("c{i}@example.com"));
            e.message_id = format!("m{i}");
            e
        })
        .collect();
    let results: Vec<_> = futures_util::stream::iter(envs.iter().map(|e| channel.send(e)))
        .buffer_unordered(3)
        .collect()
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let mut peers = std::collections::BTreeSet::new();
    for _ in 0..30 {
        peers.insert(server.received().await.peer.expect("peer port"));
    }
    assert!(
        peers.len() <= 3,
        "{} connections for 30 messages",
        peers.len()
    );
}

/// A relay closes a kept connection while it is idle (here after 0.2 s): the next message
/// finds it closed at the NOOP, opens a new one, and is sent, not failed.
#[tokio::test]
async fn smtp_a_kept_connection_the_relay_closed_is_replaced_without_failing_the_send() {
    let mut server = support::SmtpServer::start_full(None, None, None, Some(0.2)).await;
    let channel = plain_smtp(server.port, ", concurrency: 1", &[]);
    let first = envelope("ana@example.com");
    channel.send(&first).await.expect("first sent");
    let a = server.received().await.peer;
    // Real time: the relay's own idle timer is what is under test.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let mut second = envelope("bia@example.com");
    second.message_id = "bf26:bia:0".into();
    channel
        .send(&second)
        .await
        .expect("second sent on a new connection");
    let b = server.received().await.peer;
    assert_ne!(a, b, "the closed connection was not replaced");
}

//! Each fixture of tests/fixtures/bounces (real-world-shaped DSNs, Exim bounces, ARF
//! complaints, an auto-reply) read field by field, with LF and with CRLF line ends; then
//! random and truncated input, which must give `Ok` or `Err` and never a panic.

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;

#[path = "../../../tests/support/bounce_fill.rs"]
mod fill;

const KEY: &str = "m-9de8072142291495d0f61052";

fn now() -> Timestamp {
    "2026-12-01T00:00:00Z".parse().unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The message a bounce is about, as disparo's smtp channel writes one.
fn sent(address: &str) -> fill::Sent {
    let message_id = format!("<{KEY}@loja.example>");
    let reference = format!("{KEY}.42");
    fill::Sent {
        address: address.to_owned(),
        original: format!(
            "From: Loja <news@loja.example>\r\nTo: Ana <{address}>\r\nSubject: Oferta\r\nDate: Mon, 30 Nov 2026 12:00:05 +0000\r\nMessage-ID: {message_id}\r\nX-Disparo-Ref: {reference}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nOi Ana!\r\nFrom now on: 40% off.\r\n"
        ),
        message_id,
        reference,
    }
}

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/bounces/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fixture filled for `address`, parsed with LF and with CRLF line ends (which must
/// agree); its receipts.
fn receipts(name: &str, address: &str) -> Vec<Receipt> {
    let template = fixture(name);
    let lf = parse(
        fill::fill(&template, &sent(address), false).as_bytes(),
        now(),
    );
    let crlf = parse(
        fill::fill(&template, &sent(address), true).as_bytes(),
        now(),
    );
    let lf = lf.unwrap_or_else(|e| panic!("{name}: {e}"));
    let crlf = crlf.unwrap_or_else(|e| panic!("{name} (CRLF): {e}"));
    assert_eq!(lf, crlf, "{name}: LF and CRLF read alike");
    match lf {
        Parsed::Receipts(r) => r,
        Parsed::Skipped(why) => panic!("{name} skipped: {why}"),
    }
}

fn skipped(name: &str) -> String {
    let filled = fill::fill(&fixture(name), &sent("ana@example.com"), true);
    match parse(filled.as_bytes(), now()) {
        Ok(Parsed::Skipped(why)) => why,
        other => panic!("{name}: {other:?}"),
    }
}

/// What every receipt of a bounce about [`sent`] shares.
fn names_the_message(r: &Receipt) {
    assert_eq!(r.source, Source::Email);
    assert_eq!(
        r.target.provider_id.as_deref(),
        Some("<m-9de8072142291495d0f61052@loja.example>")
    );
}

fn hard(r: &Receipt, address: &str, code: &str) {
    assert_eq!(r.event, Event::Bounced);
    assert_eq!(r.target.address.as_deref(), Some(address));
    assert_eq!(r.code.as_deref(), Some(code));
    assert_eq!(
        r.effect,
        Effect::Suppress {
            reason: format!("hard bounce {code}")
        }
    );
}

#[test]
fn postfix_user_unknown_is_a_hard_bounce_of_that_message() {
    let r = receipts("postfix-5.1.1.eml", "bruno@example.net");
    assert_eq!(r.len(), 1);
    let r = &r[0];
    names_the_message(r);
    assert_eq!(r.target.reference, CallbackRef::parse(&format!("{KEY}.42")));
    hard(r, "bruno@example.net", "5.1.1");
    assert_eq!(
        r.detail.as_deref(),
        Some(
            "550 5.1.1 <bruno@example.net>: Recipient address rejected: User unknown in virtual mailbox table"
        )
    );
    // No Last-Attempt-Date: the report's Arrival-Date.
    assert_eq!(r.occurred_at, at("2026-11-30T12:00:05Z"));
    assert_eq!(
        r.dedupe,
        "dsn:<20261130120006.4F1A21E0F3A@mail.loja.example>:bruno@example.net"
    );
    assert!(r.raw.contains("Reporting-MTA: dns; mail.loja.example"));
    assert!(r.raw.contains("Status: 5.1.1"));
}

#[test]
fn postfix_delay_warning_is_a_soft_bounce_read_from_rfc822_headers() {
    let r = receipts("postfix-4.2.2-delayed.eml", "gabi@example.com");
    assert_eq!(r.len(), 1);
    let r = &r[0];
    names_the_message(r);
    assert!(
        r.target.reference.is_some(),
        "X-Disparo-Ref from the headers part"
    );
    assert_eq!(r.event, Event::SoftBounce);
    assert_eq!(r.code.as_deref(), Some("4.2.2"));
    assert_eq!(r.effect, Effect::None, "a soft bounce suppresses nothing");
    assert_eq!(
        r.detail.as_deref(),
        Some("452 4.2.2 <gabi@example.com>: Mailbox full")
    );
}

#[test]
fn exim_text_bounce_is_read_from_x_failed_recipients_and_its_copy() {
    let r = receipts("exim-text.eml", "davi@example.org");
    assert_eq!(r.len(), 1);
    let r = &r[0];
    names_the_message(r);
    assert!(r.target.reference.is_some(), "from the copied headers");
    hard(r, "davi@example.org", "5.1.1");
    let detail = r.detail.as_deref().unwrap();
    assert!(
        detail.starts_with("SMTP error from remote mail server after RCPT TO:<davi@example.org>:")
            && detail.ends_with("User unknown in local recipient table"),
        "{detail}"
    );
    assert_eq!(r.occurred_at, at("2026-11-30T12:00:09Z"), "its Date");
    assert_eq!(
        r.dedupe,
        "exim:<E1kjm7p-0003Yx-Lm@mail.example.org>:davi@example.org"
    );
}

#[test]
fn exim_text_saying_temporary_is_soft_and_unknown_text_is_skipped() {
    let delayed = fixture("exim-text.eml")
        .replace(
            "could not be delivered to one or more of its\nrecipients. This is a permanent error.",
            "has not yet been delivered to one or more of its recipients after more than 24 hours on the queue.",
        )
        .replace("550 5.1.1", "451");
    let filled = fill::fill(&delayed, &sent("davi@example.org"), false);
    let Ok(Parsed::Receipts(r)) = parse(filled.as_bytes(), now()) else {
        panic!("not read: {filled}");
    };
    assert_eq!(
        (r[0].event, &r[0].effect),
        (Event::SoftBounce, &Effect::None)
    );
    let strange = "From: x@example.org\nX-Failed-Recipients: a@example.org\n\nSomething else.\n";
    assert!(matches!(
        parse(strange.as_bytes(), now()),
        Ok(Parsed::Skipped(why)) if why.contains("X-Failed-Recipients")
    ));
}

#[test]
fn exim_dsn_with_lower_case_content_type_and_status_5_0_0() {
    let r = receipts("exim-dsn.eml", "carla@example.org");
    assert_eq!(r.len(), 1);
    names_the_message(&r[0]);
    hard(&r[0], "carla@example.org", "5.0.0");
    assert!(r[0].detail.as_deref().unwrap().contains("User unknown"));
}

#[test]
fn gmail_dsn_nested_in_related_and_alternative_parts() {
    let r = receipts("gmail-5.1.1.eml", "elisa@example.com");
    assert_eq!(r.len(), 1);
    let r = &r[0];
    names_the_message(r);
    hard(r, "elisa@example.com", "5.1.1");
    let detail = r.detail.as_deref().unwrap();
    assert!(
        detail.starts_with("550-5.1.1 The email account that you tried to reach does not exist."),
        "{detail}"
    );
    // Last-Attempt-Date, in Pacific time.
    assert_eq!(r.occurred_at, at("2026-11-30T12:00:06Z"));
}

#[test]
fn outlook_recipient_not_found_with_rfc822_headers() {
    let r = receipts("outlook-5.1.10.eml", "fabio@contoso.example");
    assert_eq!(r.len(), 1);
    names_the_message(&r[0]);
    assert!(r[0].target.reference.is_some());
    hard(&r[0], "fabio@contoso.example", "5.1.10");
    assert_eq!(
        r[0].detail.as_deref(),
        Some(
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient fabio@contoso.example not found by SMTP address lookup"
        )
    );
}

#[test]
fn outlook_global_delivery_status_in_base64_with_utf8_addresses() {
    let r = receipts("outlook-5.1.10-global.eml", "dora@contoso.example");
    assert_eq!(r.len(), 1);
    names_the_message(&r[0]);
    assert!(
        r[0].target.reference.is_some(),
        "from message/global-headers"
    );
    hard(&r[0], "dora@contoso.example", "5.1.10");
}

#[test]
fn yahoo_arf_abuse_report_is_a_complaint() {
    let r = receipts("arf-yahoo.eml", "hugo@example.com");
    assert_eq!(r.len(), 1);
    let r = &r[0];
    names_the_message(r);
    assert!(r.target.reference.is_some());
    assert_eq!(r.event, Event::Complained);
    assert_eq!(r.target.address.as_deref(), Some("hugo@example.com"));
    assert_eq!(r.code.as_deref(), Some("abuse"));
    assert_eq!(
        r.effect,
        Effect::Suppress {
            reason: "complaint (abuse)".into()
        }
    );
    assert_eq!(
        r.detail.as_deref(),
        Some("Feedback-Type: abuse; User-Agent: Yahoo!-Mail-Feedback/2.0")
    );
    // Yahoo writes Received-Date (the ARF draft's name) for Arrival-Date.
    assert_eq!(r.occurred_at, at("2026-11-30T12:00:05Z"));
    assert!(r.raw.contains("Original-Rcpt-To: hugo@example.com"));
}

#[test]
fn microsoft_jmrp_names_the_recipient_on_the_returned_message() {
    let r = receipts("arf-microsoft-jmrp.eml", "ines@example.com");
    assert_eq!(r.len(), 1);
    names_the_message(&r[0]);
    assert_eq!(r[0].event, Event::Complained);
    assert_eq!(r[0].target.address.as_deref(), Some("ines@example.com"));
    assert_eq!(r[0].occurred_at, at("2026-11-30T12:00:05Z"));
}

#[test]
fn auto_replies_and_ordinary_mail_are_skipped_with_the_reason() {
    assert_eq!(
        skipped("auto-reply.eml"),
        "an auto-reply (Auto-Submitted: auto-replied), not a bounce"
    );
    let ordinary = "From: a@example.com\r\nTo: news@loja.example\r\nSubject: hi\r\n\r\nHello\r\n";
    assert!(matches!(
        parse(ordinary.as_bytes(), now()),
        Ok(Parsed::Skipped(why)) if why.starts_with("not a delivery status notification")
    ));
}

#[test]
fn a_report_cut_short_or_naming_nobody_is_an_error_that_says_why() {
    let cut = fill::fill(&fixture("truncated-dsn.eml"), &sent("x@example.com"), false);
    let e = parse(cut.as_bytes(), now()).unwrap_err();
    assert!(
        e.contains("without its message/delivery-status part"),
        "{e}"
    );
    for (bad, says) in [
        ("", "empty"),
        ("\u{0}\u{1}binary garbage\n", "first line is no header"),
        (
            "Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x.example\n\n--b--\n",
            "names no recipient",
        ),
        (
            "Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\n\n--b--\n",
            "names neither its recipient",
        ),
    ] {
        let e = parse(bad.as_bytes(), now()).unwrap_err();
        assert!(e.contains(says), "{bad:?}: {e}");
    }
}

#[test]
fn dsn_actions_and_statuses_decide_hard_soft_or_nothing() {
    let dsn = |fields: &str| {
        format!(
            "Message-ID: <b1@mta.example>\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mta.example\n\nFinal-Recipient: rfc822; Ana@Example.COM\n{fields}\n--b--\n"
        )
    };
    let read = |fields: &str| parse(dsn(fields).as_bytes(), now()).unwrap();
    let event = |fields: &str| match read(fields) {
        Parsed::Receipts(r) => Some(r[0].event),
        Parsed::Skipped(_) => None,
    };
    assert_eq!(event("Action: failed\nStatus: 5.2.1"), Some(Event::Bounced));
    assert_eq!(
        event("Action: FAILED\nStatus: 5.7.1 (refused)"),
        Some(Event::Bounced)
    );
    // Given up after days of 4xx: the address may be fine.
    assert_eq!(
        event("Action: failed\nStatus: 4.4.7"),
        Some(Event::SoftBounce)
    );
    assert_eq!(
        event("Action: delayed\nStatus: 4.4.1"),
        Some(Event::SoftBounce)
    );
    assert_eq!(event("Action: failed"), Some(Event::Bounced));
    assert_eq!(
        event("Status: 5.1.1"),
        Some(Event::Bounced),
        "no Action: by the status"
    );
    assert_eq!(event("Action: delivered\nStatus: 2.0.0"), None);
    assert_eq!(event("Action: relayed\nStatus: 2.0.0"), None);
    let Parsed::Receipts(r) = read("Action: failed\nStatus: 5.1.1") else {
        unreachable!()
    };
    assert_eq!(
        r[0].target.address.as_deref(),
        Some("ana@example.com"),
        "normalised"
    );
    assert_eq!(
        r[0].target.provider_id, None,
        "no returned message, no pointer"
    );
    assert_eq!(r[0].occurred_at, now(), "no date anywhere: now");
}

#[test]
fn several_recipients_give_one_receipt_each() {
    let dsn = "Message-ID: <b2@mta.example>\nIn-Reply-To: <m-1@loja.example>\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mta.example\n\nFinal-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 5.1.1\n\nFinal-Recipient: rfc822; b@example.com\nAction: delayed\nStatus: 4.2.2\n\nFinal-Recipient: rfc822; c@example.com\nAction: delivered\nStatus: 2.0.0\n--b--\n";
    let Ok(Parsed::Receipts(r)) = parse(dsn.as_bytes(), now()) else {
        panic!()
    };
    let got: Vec<_> = r
        .iter()
        .map(|r| {
            (
                r.target.address.as_deref().unwrap(),
                r.event,
                r.dedupe.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "a@example.com",
                Event::Bounced,
                "dsn:<b2@mta.example>:a@example.com"
            ),
            (
                "b@example.com",
                Event::SoftBounce,
                "dsn:<b2@mta.example>:b@example.com"
            ),
        ]
    );
    assert_eq!(
        r[0].target.provider_id.as_deref(),
        Some("<m-1@loja.example>"),
        "In-Reply-To"
    );
}

#[test]
fn a_report_without_message_id_is_named_by_its_contents() {
    let dsn = |status: &str| {
        format!(
            "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mta.example\n\nFinal-Recipient: rfc822; a@example.com\nAction: failed\nStatus: {status}\n--b--\n"
        )
    };
    let key = |s: &str| match parse(dsn(s).as_bytes(), now()).unwrap() {
        Parsed::Receipts(r) => r[0].dedupe.clone(),
        Parsed::Skipped(w) => panic!("{w}"),
    };
    assert!(key("5.1.1").starts_with("dsn:sha256:"));
    assert_eq!(
        key("5.1.1"),
        key("5.1.1"),
        "the same report twice: the same key"
    );
    assert_ne!(key("5.1.1"), key("5.1.2"));
}

#[test]
fn feedback_types_that_are_no_complaints() {
    let arf = |t: &str| {
        format!(
            "Content-Type: multipart/report; report-type=feedback-report; boundary=b\n\n--b\nContent-Type: message/feedback-report\n\nFeedback-Type: {t}\nOriginal-Rcpt-To: <a@example.com>\n--b--\n"
        )
    };
    for t in ["not-spam", "auth-failure"] {
        assert!(
            matches!(parse(arf(t).as_bytes(), now()), Ok(Parsed::Skipped(_))),
            "{t}"
        );
    }
    for t in ["abuse", "fraud", "virus", "other", "opt-out"] {
        let Ok(Parsed::Receipts(r)) = parse(arf(t).as_bytes(), now()) else {
            panic!("{t}")
        };
        assert_eq!(r[0].event, Event::Complained);
        assert_eq!(r[0].target.address.as_deref(), Some("a@example.com"));
        assert_eq!(
            r[0].effect,
            Effect::Suppress {
                reason: format!("complaint ({t})")
            }
        );
    }
}

#[test]
fn small_readers() {
    assert_eq!(
        recipient_address("utf-8; j\\x{F6}rg@example.com").as_deref(),
        Some("jörg@example.com")
    );
    assert_eq!(recipient_address("x400; /C=US/"), None);
    assert_eq!(
        recipient_address("rfc822;<A@B.example>").as_deref(),
        Some("a@b.example")
    );
    assert_eq!(
        status_in_text("550 5.1.1 <a@b>: nope").as_deref(),
        Some("5.1.1")
    );
    assert_eq!(status_in_text("452-4.2.2 full.").as_deref(), Some("4.2.2"));
    assert_eq!(status_in_text("version 1.2.3 on 10.0.0.1"), None);
    assert_eq!(
        parse_date("Mon, 30 Nov 2026 04:00:06 -0800 (PST)"),
        Some(at("2026-11-30T12:00:06Z"))
    );
    assert_eq!(
        parse_date("Tue, 30 Nov 2026 12:00:00 GMT"),
        Some(at("2026-11-30T12:00:00Z")),
        "a wrong weekday is forgiven"
    );
    assert_eq!(mime::message_id(" <a@b> ", false).as_deref(), Some("<a@b>"));
    assert_eq!(
        mime::message_id("<x@y> <a@b>", true).as_deref(),
        Some("<a@b>")
    );
    assert_eq!(mime::message_id("a@b", false).as_deref(), Some("<a@b>"));
    assert_eq!(mime::message_id("junk", false), None);
    assert_eq!(
        mime::quoted_printable(b"f=E9rias=\r\nok =ZZ="),
        b"f\xe9riasok =ZZ="
    );
    assert_eq!(mime::base64(b"T2kg\r\nQW5h\r\n"), b"Oi Ana");
    let ct = mime::ContentType::parse(
        "Multipart/Report; Report-Type=\"delivery-status\"; boundary=\"a;b\"",
    );
    assert_eq!(ct.mime, "multipart/report");
    assert_eq!(ct.param("report-type"), Some("delivery-status"));
    assert_eq!(ct.param("boundary"), Some("a;b"));
}

/// A real-shaped report made of random parts, or cut anywhere.
fn corpus() -> Vec<String> {
    [
        ("postfix-5.1.1.eml", "bruno@example.net"),
        ("gmail-5.1.1.eml", "elisa@example.com"),
        ("outlook-5.1.10-global.eml", "dora@contoso.example"),
        ("arf-yahoo.eml", "hugo@example.com"),
        ("exim-text.eml", "davi@example.org"),
    ]
    .iter()
    .map(|(f, a)| fill::fill(&fixture(f), &sent(a), true))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse(&data, now());
    }

    #[test]
    fn mail_like_noise_never_panics(lines in proptest::collection::vec(
        prop_oneof![
            Just("Content-Type: multipart/report; report-type=delivery-status; boundary=b".to_owned()),
            Just("Content-Type: message/delivery-status".to_owned()),
            Just("Content-Type: multipart/mixed; boundary=\"".to_owned()),
            Just("Content-Transfer-Encoding: base64".to_owned()),
            Just("Content-Transfer-Encoding: quoted-printable".to_owned()),
            Just("--b".to_owned()),
            Just("--b--".to_owned()),
            Just("".to_owned()),
            Just(" folded".to_owned()),
            Just("Final-Recipient: utf-8; \\x{D800}@x\\x{".to_owned()),
            Just("Status: 5.".to_owned()),
            Just("Feedback-Type:".to_owned()),
            Just("X-Failed-Recipients: ,,@".to_owned()),
            "[ -~]{0,40}",
            "=[0-9A-Z]{0,3}",
        ],
        0..60,
    )) {
        let _ = parse(lines.join("\r\n").as_bytes(), now());
    }

    #[test]
    fn real_reports_cut_anywhere_never_panic(which in 0usize..5, cut in 0.0f64..1.0) {
        let all = corpus();
        let data = all[which].as_bytes();
        let end = (data.len() as f64 * cut) as usize;
        let _ = parse(&data[..end], now());
    }
}

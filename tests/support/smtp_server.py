"""A real SMTP server on 127.0.0.1 for the smtp adapter tests (aiosmtpd).

    smtp_server.py make-certs DIR
        writes DIR/ca.pem (a test CA) and DIR/server.pem, DIR/server.key (a leaf for
        127.0.0.1 and localhost signed by it)
    smtp_server.py serve [--cert PEM --key KEY] [--user U --password P]
        listens on 127.0.0.1 on a free port, prints {"port": N} on one line, then one JSON
        line per message received: {"mail_from", "rcpt_tos", "data" (raw), "tls", "login",
        "headers" (decoded, lower-case names), "content_type", "parts": [{"content_type", "text"}],
        "peer" (the client's port: one per connection), "dkim" (with --dkim-key: the DKIM
        signature verified with dkimpy against that public key, no DNS)} parsed with Python's
        email package.
        A message with a line longer than RFC 5322's 998 octets is refused (554), as strict
        relays do.
        With --idle-timeout S, a connection idle S seconds is closed by the server.
        With --cert, STARTTLS is offered and required before MAIL and AUTH.
        Exits when its standard input closes.
"""

import asyncio
import datetime
import email
import email.policy
import ipaddress
import json
import logging
import os
import ssl
import sys
import warnings


def make_certs(out):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "disparo test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with open(os.path.join(out, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(os.path.join(out, "server.pem"), "wb") as f:
        f.write(leaf.public_bytes(pem))
    with open(os.path.join(out, "server.key"), "wb") as f:
        f.write(
            key.private_bytes(
                pem,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


class Handler:
    def __init__(self, dkim_key=None):
        self.dkim_key = dkim_key

    async def handle_DATA(self, server, session, envelope):
        login = getattr(session, "disparo_login", None)
        raw = envelope.original_content
        longest = max((len(line) for line in raw.split(b"\r\n")), default=0)
        if longest > 998:
            return "554 5.6.0 Message has a line of %d octets; RFC 5322 allows 998" % longest
        dkim_ok = None
        if self.dkim_key is not None:
            import dkim

            txt = self.dkim_key

            def dnsfunc(name, timeout=5):
                return txt

            dkim_ok = bool(dkim.verify(raw, dnsfunc=dnsfunc))
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = [
            {"content_type": part.get_content_type(), "text": part.get_content()}
            for part in msg.walk()
            if not part.is_multipart()
        ]
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": raw.decode("utf-8", "replace"),
            "tls": session.ssl is not None,
            "login": login,
            "headers": {k.lower(): str(v) for k, v in msg.items()},
            "content_type": msg.get_content_type(),
            "parts": parts,
            "peer": session.peer[1] if session.peer else None,
            "dkim": dkim_ok,
        }
        print(json.dumps(record), flush=True)
        return "250 OK"


async def serve(args):
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    opts = dict(zip(args[::2], args[1::2]))
    tls = None
    if "--cert" in opts:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(opts["--cert"], opts["--key"])
    user, password = opts.get("--user"), opts.get("--password")
    dkim_key = None
    if "--dkim-key" in opts:
        with open(opts["--dkim-key"], "rb") as f:
            dkim_key = f.read()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        if ok:
            session.disparo_login = user
        return AuthResult(success=ok, handled=False)

    def factory():
        kwargs = dict(hostname="disparo-test", decode_data=False, enable_SMTPUTF8=True)
        if "--idle-timeout" in opts:
            # Closes a connection idle this long, as relays do (Postfix: 300 s).
            kwargs.update(timeout=float(opts["--idle-timeout"]))
        if tls is not None:
            kwargs.update(tls_context=tls, require_starttls=True)
        if user is not None:
            kwargs.update(
                authenticator=authenticator,
                auth_required=True,
                auth_require_tls=tls is not None,
            )
        return SMTP(Handler(dkim_key), **kwargs)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    # Stop when the test closes our stdin (or dies).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    if sys.argv[1] == "make-certs":
        make_certs(sys.argv[2])
    else:
        asyncio.run(serve(sys.argv[2:]))

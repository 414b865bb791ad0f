#!/usr/bin/env python3
"""Receives disparo webhook messages, checks their signatures and refuses replays.

Run: DISPARO_WEBHOOK_SECRET=... python3 webhook_receiver.py [PORT]
(listens on 127.0.0.1:PORT, default 8080; prints "listening on PORT" once ready).

It checks the Standard Webhooks signature disparo sends with every message:
webhook-id (the message id), webhook-timestamp (unix seconds) and
webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">. The key is
the secret's bytes, or, for a secret written whsec_<base64>, the decoded bytes.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["DISPARO_WEBHOOK_SECRET"]
if SECRET.startswith("whsec_"):
    KEY = base64.b64decode(SECRET[len("whsec_"):] + "==")
else:
    KEY = SECRET.encode()
TOLERANCE = 5 * 60  # seconds a signed request stays valid, either way
# Use database tables with unique keys in production:
processed = set()  # message ids handled: a retry of one is answered, not acted on twice
signed = {}  # (id, timestamp) seen within the tolerance -> when: a repeat is a replay


def verified(body: bytes, headers) -> str:
    """The message id if the request is signed and fresh; raises ValueError if not."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit():
        raise ValueError("missing webhook-id or webhook-timestamp")
    if abs(time.time() - int(stamp)) > TOLERANCE:
        raise ValueError("timestamp outside the tolerance")
    signed_content = msg_id.encode() + b"." + stamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(KEY, signed_content, hashlib.sha256).digest())
    for candidate in headers.get("webhook-signature", "").split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(expected, signature.encode()):
            return msg_id
    raise ValueError("bad signature")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            msg_id = verified(body, self.headers)
        except ValueError as e:
            # 401: disparo treats it as a broken setup and pauses the campaign.
            return self.answer(401, {"error": str(e)})
        now = time.time()
        for k in [k for k, at in signed.items() if now - at > 2 * TOLERANCE]:
            del signed[k]
        attempt = (msg_id, self.headers["webhook-timestamp"])
        if attempt in signed:
            # disparo signs each attempt anew: the same id and timestamp twice is a replay.
            return self.answer(409, {"error": "replayed request"})
        signed[attempt] = now
        if msg_id in processed:
            # A retry after a lost answer: success, without acting twice.
            return self.answer(200, {"id": msg_id, "duplicate": True})
        message = json.loads(body)
        # ... hand the message to your system here; raise -> 500 -> disparo retries ...
        print(message.get("recipient"), message.get("campaign"), flush=True)
        processed.add(msg_id)
        self.answer(200, {"id": msg_id})

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8080), Handler)
    print("listening on", server.server_address[1], flush=True)
    server.serve_forever()

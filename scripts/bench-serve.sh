#!/usr/bin/env bash
# `disparo serve` ingest benchmark (issue 16): signed receipts per second, each acknowledged
# only once committed (SQLite WAL, synchronous=FULL), for messages really in the schedule.
#
#   1. plans N recipients (default 100k) on the outbox channel and marks them sent with
#      provider ids p-<row> (as `run` would have), in a release build;
#   2. writes one signed webhook receipt per line (unique event ids, X-Disparo-Signature);
#   3. starts `disparo serve` and drives it with wrk (Debian's package, installed when
#      missing) from a Lua script that posts those receipts, 64 connections, 20 s;
#   4. counts the receipts on disk and prints a markdown table: wrk's requests/s, non-2xx
#      answers, receipts stored, stored per second, and the machine.
#
#      (WhatsApp's sent, delivered, read: 3 per message, 300k in all); wrk stops when every
#      receipt was posted once (wrk itself still waits out SECONDS_RUN, so the rate is taken
#      from the store: receipts over the span of their received_at);
# Usage: scripts/bench-serve.sh [--quick]   (--quick: 20k recipients, 60k receipts)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DISPARO=$TARGET_DIR/release/disparo
N=100000 SECONDS_RUN=60 CONNECTIONS=64
if [[ ${1:-} == --quick ]]; then N=20000 SECONDS_RUN=8; fi
log() { printf '%s\n' "$*" >&2; }

if ! command -v wrk >/dev/null; then
    log "installing wrk from Debian's packages"
    if [[ $(id -u) == 0 ]]; then apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    else sudo apt-get install -y wrk >/dev/null; fi
fi
log "building (release)"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin disparo

WORK=$(mktemp -d)
SERVE_PID=
# (`kill 0` would signal this whole process group: only a server that was started.)
trap 'if [[ -n $SERVE_PID ]]; then kill "$SERVE_PID" 2>/dev/null || true; fi; if [[ -z ${BENCH_KEEP:-} ]]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi' EXIT
cd "$WORK"
export HOOK_SECRET=bench-receipts-secret DISPARO_SIMULATE=1
cat >disparo.yaml <<YAML
timezone: America/Sao_Paulo
channels:
  hook: { type: webhook, url: "http://127.0.0.1:9/unused", secret_env: HOOK_SECRET }
YAML
mkdir -p campaigns templates
printf 'channel: outbox\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n' >campaigns/c.yaml
printf 'Oi {{name}}' >templates/t.hbs
python3 - "$N" <<'PY'
import sys
n = int(sys.argv[1])
with open("a.csv", "w") as f:
    f.write("id,name,phone\n")
    for i in range(n):
        f.write(f"r{i},Ana {i},+55119{i:08d}\n")
PY
log "planning $N messages"
"$DISPARO" -q --now 2026-11-30T11:00:00Z plan c
python3 - <<'PY'
import sqlite3
db = sqlite3.connect("disparo.db")
db.execute("UPDATE queue SET state = 'sent', provider_id = 'p-' || message_id, attempts = 1")
db.commit()
PY
log "writing signed receipts"
python3 - "$N" "$HOOK_SECRET" <<'PY'
import hmac, hashlib, json, sys
n, secret = int(sys.argv[1]), sys.argv[2].encode()
with open("receipts.txt", "w") as f:
    for k in range(3 * n):
        status = ("sent", "delivered", "read")[k // n]
        body = json.dumps({"id": f"evt-{k}", "provider_id": f"p-{k % n + 1}", "status": status}, separators=(",", ":"))
        sig = "sha256=" + hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
        f.write(sig + "\t" + body + "\n")
PY
cat >post.lua <<'LUA'
-- Each wrk thread posts its own slice of receipts.txt, in order, once each, and stops when
-- its slice is done (requests still asked for then are cheap /healthz GETs, not replays).
local lines = {}
for l in io.lines("receipts.txt") do lines[#lines + 1] = l end
local counter = 0
function setup(thread) thread:set("id", counter); counter = counter + 1 end
function init(args)
  i = id; step = 2; done = 0
  mine = math.floor((#lines - id + step - 1) / step)   -- this thread's slice
end
function request()
  -- wrk asks each thread for one request up front that it never sends: give it no receipt.
  if not primed then primed = true; return wrk.format("GET", "/healthz") end
  if i >= #lines then return wrk.format("GET", "/healthz") end
  local line = lines[i + 1]
  i = i + step
  local tab = line:find("\t")
  return wrk.format("POST", "/webhook/receipts", { ["X-Disparo-Signature"] = line:sub(1, tab - 1), ["Content-Type"] = "application/json" }, line:sub(tab + 1))
end
-- Stops once every receipt of the slice is answered (a receipt's answer says "received"), so
-- no post is cut off in flight.
function response(status, headers, body)
  if body:find('"received"', 1, true) then done = done + 1 end
  if done >= mine then wrk.thread:stop() end
end
LUA
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$DISPARO" serve --listen "127.0.0.1:$PORT" 2>serve.log &
SERVE_PID=$!
for _ in $(seq 100); do grep -q "listening on" serve.log && break; sleep 0.1; done
log "wrk: $CONNECTIONS connections, ${SECONDS_RUN} s"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_RUN}s" --latency -s post.lua "http://127.0.0.1:$PORT/webhook/receipts" >wrk.txt
kill -TERM "$SERVE_PID"; wait "$SERVE_PID" || true; SERVE_PID=
cat wrk.txt >&2
NON2XX=$(awk '/Non-2xx/ { print $NF }' wrk.txt); NON2XX=${NON2XX:-0}
TOTAL=$(awk '/requests in/ { print $1 }' wrk.txt)
P99=$(awk '$1 == "99%" { print $2 }' wrk.txt)
read -r STORED MATCHED READ SPAN_MS <<<"$(python3 -c 'import sqlite3
db = sqlite3.connect("disparo.db")
q = lambda s: db.execute(s).fetchone()[0]
print(q("SELECT COUNT(*) FROM receipts"), q("SELECT COUNT(*) FROM receipts WHERE message_id IS NOT NULL AND applied = 1"), q("SELECT COUNT(*) FROM delivery WHERE status = '"'"'read'"'"'"), q("SELECT MAX(received_at) - MIN(received_at) FROM receipts"))')"
EXPECTED=$((3 * N))
DUR=$(awk -v ms="$SPAN_MS" 'BEGIN { printf "%.2f", ms / 1000 }')
printf '| measure | value | notes |\n|---|---|---|\n'
P50=$(awk '$1 == "50%" { print $2 }' wrk.txt)
printf '| latency (wrk) | p50 %s, p99 %s | %s connections, one receipt per request, each signed |\n' "$P50" "$P99" "$CONNECTIONS"
printf '| answers | %s | non-2xx: %s |\n' "$TOTAL" "$NON2XX"
printf '| receipts on disk | %s of %s posted | %s matched and applied; %s of %s messages read |\n' "$STORED" "$EXPECTED" "$MATCHED" "$READ" "$N"
printf '| stored receipts/s | %s | %s receipts in %s s (first to last received); durable: each answered after its commit (WAL, synchronous=FULL) |\n' "$(awk -v s="$STORED" -v d="$DUR" 'BEGIN { printf "%.0f", s / d }')" "$STORED" "$DUR"
printf '| machine | %s | %s cores |\n' "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(nproc)"

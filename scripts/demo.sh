#!/usr/bin/env bash
# The main job on the shipped example, with no credentials and no server:
#   1. validate every campaign, template and audience;
#   2. plan the campaigns the day before Black Friday (into ./disparo.db);
#   3. run the dispatcher twice on Black Friday, as cron would: early UTC (Asia-Pacific's
#      morning) and in the afternoon UTC (Europe's and the Americas' morning). WhatsApp goes
#      to the console;
#   4. show the status;
#   5. run it once more on Monday afternoon UTC, when the payment reminders (SMS) and the
#      weekly digest (email) are due: they are appended to ./outbox.jsonl.
# `--now` pins the date so the demo always shows the same thing. Running it again is safe:
# plans are idempotent and a sent message is never sent again.
set -euo pipefail
# `run` takes --now only in a simulation (it would otherwise judge quiet hours at a fake instant).
export DISPARO_SIMULATE=1
cd "$(dirname "$0")/.."
cargo build --release --quiet
disparo() {
  printf '\n$ disparo %s\n' "$*" >&2
  target/release/disparo "$@"
}
disparo --now 2026-11-26T12:00:00Z validate
disparo --now 2026-11-26T12:00:00Z plan black-friday-2026 payment-reminder weekly-digest
disparo --now 2026-11-27T03:00:00Z run --once
disparo --now 2026-11-27T16:30:00Z run --once
disparo --now 2026-11-27T16:30:00Z status
disparo --now 2026-11-30T16:00:00Z run --once >/dev/null
printf '\n%s lines in outbox.jsonl (SMS and email)\n' "$(wc -l < outbox.jsonl)" >&2

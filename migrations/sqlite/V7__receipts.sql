-- Receipts (issue #16): what providers and recipients report after a send. Every receipt is
-- stored once per (source, dedupe) — a provider retrying its webhook or a bounce imported
-- twice is the same event — with the message it names, when it found one (NULL: not matched
-- yet, or never: an unknown id, an opt-out by a number we never messaged).
CREATE TABLE receipts (
    id              INTEGER PRIMARY KEY,
    source          TEXT NOT NULL,
    dedupe          TEXT NOT NULL,
    event           TEXT NOT NULL,
    message_id      INTEGER,
    provider_id     TEXT,
    reference       TEXT,
    address         TEXT,
    code            TEXT,
    detail          TEXT,
    occurred_at     INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    effect          TEXT NOT NULL,
    -- Whether the ladder and the effect were applied (0 while unmatched).
    applied         INTEGER NOT NULL DEFAULT 0,
    raw             TEXT NOT NULL,
    UNIQUE (source, dedupe)
);
CREATE INDEX receipts_message ON receipts (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX receipts_unmatched ON receipts (received_at) WHERE applied = 0;

-- How far each message got after the provider accepted it: one row per message that has a
-- receipt. `rank` only grows (sent 1, delivered/failed/bounced 2, read 3); each instant is the
-- first report of that event.
CREATE TABLE delivery (
    message_id      INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL,
    status          TEXT NOT NULL,
    rank            INTEGER NOT NULL,
    code            TEXT,
    delivered_at    INTEGER,
    read_at         INTEGER,
    failed_at       INTEGER,
    bounced_at      INTEGER,
    opted_out_at    INTEGER,
    soft_bounces    INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX delivery_campaign ON delivery (campaign_id);

-- Receipts name messages by the provider's id. Partial: planned messages have none, so
-- `plan` pays nothing for it; each send adds one entry.
CREATE INDEX queue_provider ON queue (provider_id) WHERE provider_id IS NOT NULL;

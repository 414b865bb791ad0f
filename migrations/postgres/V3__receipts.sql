-- Receipts and each message's delivery ladder (issue #16): the same tables and meaning as
-- SQLite's V7 (migrations/sqlite), in PostgreSQL's types.
CREATE TABLE receipts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          text NOT NULL,
    dedupe          text NOT NULL,
    event           text NOT NULL,
    message_id      bigint,
    provider_id     text,
    reference       text,
    address         text,
    code            text,
    detail          text,
    occurred_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    effect          text NOT NULL,
    applied         boolean NOT NULL DEFAULT false,
    raw             text NOT NULL,
    UNIQUE (source, dedupe)
);
CREATE INDEX receipts_message ON receipts (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX receipts_unmatched ON receipts (received_at) WHERE NOT applied;

CREATE TABLE delivery (
    message_id      bigint PRIMARY KEY,
    campaign_id     bigint NOT NULL,
    status          text NOT NULL,
    rank            smallint NOT NULL,
    code            text,
    delivered_at    timestamptz,
    read_at         timestamptz,
    failed_at       timestamptz,
    bounced_at      timestamptz,
    opted_out_at    timestamptz,
    soft_bounces    bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX delivery_campaign ON delivery (campaign_id);

CREATE INDEX queue_provider ON queue (provider_id) WHERE provider_id IS NOT NULL;

-- The schedule in PostgreSQL: the same tables, columns and meaning as the SQLite schema after
-- its V5 (migrations/sqlite), in PostgreSQL's types. Instants are timestamptz (to the
-- millisecond, as disparo writes them); ids come from identity columns (sequences), never
-- from MAX(id) + 1, since several workers write at once.

-- Campaigns as last planned; `rules` holds what dispatch needs to re-apply the time rules
-- without the campaign files (JSON text, read back byte for byte).
CREATE TABLE campaigns (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    channel         text NOT NULL,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'cancelled')),
    status_reason   text,
    rules           text NOT NULL,
    recurrence_start text,
    generation      bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- Wide and written once per plan: what is sent, to whom, why it is when it is.
CREATE TABLE messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id     bigint NOT NULL REFERENCES campaigns (id),
    recipient       text NOT NULL,
    occurrence      bigint NOT NULL,
    address         text NOT NULL,
    zone            text NOT NULL,
    locale          text,
    reasons         text NOT NULL DEFAULT '',
    content         text NOT NULL,
    vars            text NOT NULL,
    generation      bigint NOT NULL,
    UNIQUE (campaign_id, recipient, occurrence)
);

-- Narrow and mutable: the delivery state machine. Claims touch only these small rows.
-- `lease_until` is on the database's clock (now()), whatever the workers' clocks say.
CREATE TABLE queue (
    message_id      bigint PRIMARY KEY REFERENCES messages (id),
    campaign_id     bigint NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'expired', 'skipped', 'cancelled')),
    due_at          timestamptz NOT NULL,
    planned_at      timestamptz NOT NULL,
    attempts        bigint NOT NULL DEFAULT 0,
    lease_owner     text,
    lease_until     timestamptz,
    updated_at      timestamptz NOT NULL,
    provider_id     text,
    last_error      text,
    lease_losses    bigint NOT NULL DEFAULT 0,
    started_by      text,
    cancelled_by    text CHECK (cancelled_by IS NULL OR cancelled_by = 'plan')
);
CREATE INDEX queue_due ON queue (state, due_at);
CREATE INDEX queue_campaign ON queue (campaign_id, state);

-- Every delivery attempt, successful or not.
CREATE TABLE attempts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      bigint NOT NULL,
    attempt         bigint NOT NULL,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    outcome         text NOT NULL,
    provider_id     text,
    code            text,
    error           text
);
CREATE INDEX attempts_message ON attempts (message_id);

-- Successful sends per address and channel, for frequency caps across campaigns and
-- workers. Read by time window per (channel, address), never by id: with several writers,
-- sequence order is not commit order.
CREATE TABLE sends (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL,
    channel         text NOT NULL,
    address         text NOT NULL
);
CREATE INDEX sends_address ON sends (channel, address, at);

-- Opt-outs, honoured at plan and again at dispatch. Addresses are stored normalised.
CREATE TABLE suppressions (
    address         text PRIMARY KEY,
    reason          text,
    source          text,
    created_at      timestamptz NOT NULL
);

-- `gate` counts the changes that must stop sends a run has already claimed (see the SQLite V4).
CREATE TABLE control (
    name            text PRIMARY KEY,
    value           bigint NOT NULL
);
INSERT INTO control (name, value) VALUES ('gate', 0);

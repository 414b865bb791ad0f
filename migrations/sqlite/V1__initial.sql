-- Campaigns as last planned; `rules` holds what dispatch needs to re-apply SPEC §4 rules 5-6
-- without reading the campaign files again.
CREATE TABLE campaigns (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'cancelled')),
    status_reason   TEXT,
    rules           TEXT NOT NULL,
    recurrence_start TEXT,
    generation      INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- Wide and written once per plan: what is sent, to whom, why it is when it is.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns(id),
    recipient       TEXT NOT NULL,
    occurrence      INTEGER NOT NULL,
    key             TEXT NOT NULL,
    address         TEXT NOT NULL,
    zone            TEXT NOT NULL,
    locale          TEXT,
    planned_local   TEXT NOT NULL,
    reasons         TEXT NOT NULL DEFAULT '',
    content         TEXT NOT NULL,
    vars            TEXT NOT NULL,
    generation      INTEGER NOT NULL,
    UNIQUE (campaign_id, recipient, occurrence)
);

-- Narrow and mutable: the delivery state machine. Claims touch only these small rows.
CREATE TABLE queue (
    message_id      INTEGER PRIMARY KEY REFERENCES messages(id),
    campaign_id     INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'expired', 'skipped', 'cancelled')),
    due_at          INTEGER NOT NULL,
    planned_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     INTEGER,
    updated_at      INTEGER NOT NULL,
    provider_id     TEXT,
    last_error      TEXT
);
CREATE INDEX queue_due ON queue (state, due_at);
CREATE INDEX queue_campaign ON queue (campaign_id, state);

-- Every delivery attempt, successful or not.
CREATE TABLE attempts (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL,
    attempt         INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER NOT NULL,
    outcome         TEXT NOT NULL,
    provider_id     TEXT,
    code            TEXT,
    error           TEXT
);
CREATE INDEX attempts_message ON attempts (message_id);

-- Successful sends per address and channel, for frequency caps across campaigns.
CREATE TABLE sends (
    channel         TEXT NOT NULL,
    address         TEXT NOT NULL,
    at              INTEGER NOT NULL
);
CREATE INDEX sends_address ON sends (channel, address, at);

-- Opt-outs, honoured at plan and again at dispatch. Addresses are stored normalised.
CREATE TABLE suppressions (
    address         TEXT PRIMARY KEY,
    reason          TEXT,
    source          TEXT,
    created_at      INTEGER NOT NULL
);

-- The message key (a hash of campaign, recipient and occurrence) and the local planned time
-- (planned_at on the recipient's zone) are computed when read: storing them cost every planned
-- message ~50 bytes and a share of the plan's time (issue #6).
ALTER TABLE messages DROP COLUMN key;
ALTER TABLE messages DROP COLUMN planned_local;

-- The state CHECK written with IN (...) built a temporary B-tree for the list on every INSERT
-- and UPDATE of a queue row (a third of the plan's CPU, measured on 1M messages); the same rule
-- as ORs of equalities costs a few comparisons. SQLite cannot alter a CHECK: the table is rebuilt.
CREATE TABLE queue_v2 (
    message_id      INTEGER PRIMARY KEY REFERENCES messages(id),
    campaign_id     INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state = 'pending' OR state = 'sending' OR state = 'sent' OR state = 'failed'
                                         OR state = 'expired' OR state = 'skipped' OR state = 'cancelled'),
    due_at          INTEGER NOT NULL,
    planned_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     INTEGER,
    updated_at      INTEGER NOT NULL,
    provider_id     TEXT,
    last_error      TEXT
);
INSERT INTO queue_v2 SELECT message_id, campaign_id, state, due_at, planned_at, attempts, lease_owner, lease_until, updated_at, provider_id, last_error FROM queue;
DROP TABLE queue;
ALTER TABLE queue_v2 RENAME TO queue;
CREATE INDEX queue_due ON queue (state, due_at);
-- No (campaign_id, state) index any more: maintaining it cost every planned message a B-tree
-- insert; per-campaign counts (`status`) scan the narrow queue instead.

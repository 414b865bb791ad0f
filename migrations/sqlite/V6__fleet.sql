-- Workers of a fleet announce themselves per channel (Store::worker_heartbeat), so that rates
-- shared by several `run` processes are split among the live ones. `first_seq`/`last_seq` are
-- values of the `fleet` counter, bumped by every heartbeat inside its write transaction:
-- writers are serialised, so a worker whose last heartbeat has a higher number than another's
-- first one has seen it (the counter orders commits; clocks need not agree).
CREATE TABLE workers (
    owner           TEXT NOT NULL,
    channel         TEXT NOT NULL,
    first_seq       INTEGER NOT NULL,
    last_seq        INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    PRIMARY KEY (owner, channel)
) WITHOUT ROWID;
INSERT INTO control (name, value) VALUES ('fleet', 0);

-- Whether the campaign has frequency caps: its claims then skip a (channel, address) another
-- run holds under a live lease, so two runs cannot both send to it inside one cap's window.
ALTER TABLE campaigns ADD COLUMN capped INTEGER NOT NULL DEFAULT 0;
UPDATE campaigns SET capped = COALESCE(json_array_length(rules, '$.caps'), 0) > 0;

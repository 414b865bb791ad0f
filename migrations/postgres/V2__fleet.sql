-- Workers of a fleet announce themselves per channel (Store::worker_heartbeat). Times are
-- the database's: `first_seen` is taken in a statement after the registration committed
-- (NULL until then), `last_seen` in each heartbeat before it reads the others, so a worker
-- whose `last_seen` is later than another's `first_seen` read the table after that one was
-- in it: it has seen it.
CREATE TABLE workers (
    owner           text NOT NULL,
    channel         text NOT NULL,
    first_seen      timestamptz,
    last_seen       timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (owner, channel)
);
INSERT INTO control (name, value) VALUES ('fleet', 0);

-- Whether the campaign has frequency caps: its claims then skip a (channel, address) another
-- run holds under a live lease (claims of capped campaigns are serialised by an advisory lock).
ALTER TABLE campaigns ADD COLUMN capped boolean NOT NULL DEFAULT false;
UPDATE campaigns SET capped = COALESCE(json_array_length((rules::json) -> 'caps'), 0) > 0;

-- `control.gate` counts the changes that must stop sends a run has already claimed: an opt-out,
-- a pause, a cancel, a re-plan. Every such change bumps it in its own transaction; a run reads
-- it (one indexed row) before it starts sends and, when it moved, re-reads the facts of what it
-- holds before sending any more (issue #12: state changed while a batch is in hand).
CREATE TABLE control (
    name            TEXT PRIMARY KEY,
    value           INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO control (name, value) VALUES ('gate', 0);

-- How often the run holding a message died with it (its lease expired). Counted apart from
-- `attempts`: a dead run's claims were mostly never started, so a lost lease must not spend one
-- of the message's delivery attempts; a message whose runs keep dying still ends `failed`.
ALTER TABLE queue ADD COLUMN lease_losses INTEGER NOT NULL DEFAULT 0;

-- The run that started a send of this message and has not recorded its outcome yet (written
-- with the group commits, only for sends still under way at the commit). When a dead run's
-- lease is taken over, a message it never started leaves no attempt on record.
ALTER TABLE queue ADD COLUMN started_by TEXT;

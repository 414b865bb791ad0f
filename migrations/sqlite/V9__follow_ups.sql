-- Follow-ups (`follows:`, issue #17): `plan` of a follow-up campaign stores each recipient's
-- rendered message here, not in `messages`: how many messages it becomes, and when, depends on
-- what happens to the parent campaign's messages. The release step (store::follow_ups) copies
-- a draft into `messages` and `queue` once per parent message whose facts decide it, under the
-- identity (follow-up, recipient, parent occurrence).
CREATE TABLE drafts (
    campaign_id     INTEGER NOT NULL REFERENCES campaigns(id),
    recipient       TEXT NOT NULL,
    address         TEXT NOT NULL,
    zone            TEXT NOT NULL,
    locale          TEXT,
    content         TEXT NOT NULL,
    vars            TEXT NOT NULL,
    -- Why it is released as skipped (invalid with --skip-invalid, suppressed at plan).
    skipped         TEXT,
    generation      INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, recipient)
) WITHOUT ROWID;

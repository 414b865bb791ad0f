-- Follow-ups (`follows:`, issue #17): the same table as SQLite's V9. `plan` of a follow-up
-- campaign stores each recipient's rendered message here; the release step copies it into
-- `messages` and `queue` once per parent message whose facts decide it.
CREATE TABLE drafts (
    campaign_id     bigint NOT NULL REFERENCES campaigns (id),
    recipient       text NOT NULL,
    address         text NOT NULL,
    zone            text NOT NULL,
    locale          text,
    content         text NOT NULL,
    vars            text NOT NULL,
    skipped         text,
    generation      bigint NOT NULL,
    PRIMARY KEY (campaign_id, recipient)
);

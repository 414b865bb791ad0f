-- Test sends (`disparo send-test`, issue #17): one rendered message sent now to a tester's
-- address. Kept apart from the campaign's messages and `sends`, so a test never marks the
-- recipient's message sent, never counts against a frequency cap and is not in the funnel.
CREATE TABLE test_sends (
    id              INTEGER PRIMARY KEY,
    campaign        TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    channel         TEXT NOT NULL,
    address         TEXT NOT NULL,
    sent_at         INTEGER NOT NULL,
    outcome         TEXT NOT NULL,
    provider_id     TEXT,
    error           TEXT
);
CREATE INDEX test_sends_campaign ON test_sends (campaign, sent_at);

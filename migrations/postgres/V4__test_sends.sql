-- Test sends (`disparo send-test`): the same table and meaning as SQLite's V8.
CREATE TABLE test_sends (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign        text NOT NULL,
    recipient       text NOT NULL,
    channel         text NOT NULL,
    address         text NOT NULL,
    sent_at         timestamptz NOT NULL,
    outcome         text NOT NULL,
    provider_id     text,
    error           text
);
CREATE INDEX test_sends_campaign ON test_sends (campaign, sent_at);

-- Successful sends, kept in the order they were recorded (for frequency caps, SPEC §4 rule 6).
--
-- V1 indexed them by (channel, address, at): every batch of sends inserted rows all over that
-- index, so each commit rewrote one 16 KiB page per send once the index outgrew the batch.
-- Now they are appended (rowid order); the only index, on `at`, grows at its end. Dispatch
-- looks caps up in a window of recent sends the store keeps in memory and brings up to date
-- from the rows appended since (`id` only grows: AUTOINCREMENT never reuses one).
CREATE TABLE sends_by_time (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    channel         TEXT NOT NULL,
    address         TEXT NOT NULL
);
INSERT INTO sends_by_time (at, channel, address) SELECT at, channel, address FROM sends ORDER BY at;
DROP TABLE sends;
ALTER TABLE sends_by_time RENAME TO sends;
CREATE INDEX sends_at ON sends (at);

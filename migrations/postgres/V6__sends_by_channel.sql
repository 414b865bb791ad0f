-- Warm-up ramps: the first send of a channel and its sends in a ramp day, read by every
-- claim of a ramped channel (see the SQLite V10). The (channel, address, at) index cannot
-- answer either without reading every send of the channel. (Version 5 is another change's.)
CREATE INDEX sends_by_channel ON sends (channel, at);

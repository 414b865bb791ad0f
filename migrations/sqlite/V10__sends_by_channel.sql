-- Warm-up ramps (`ramp:` on a channel): a claim counts a ramped channel's first send and its
-- sends of the current ramp day, in the claim's transaction. `sends` had only its index on
-- `at` (V3): the first send of a channel was a scan of every send, and a day's count read
-- every channel's sends of that day. On 1M sends (this machine, 2 vCPU): first send 57 ms
-- (152 ms for a channel without sends) and a 100k-send day 176 ms without this index, both
-- under 6 ms with it. Each channel's rows grow at its end of the index (times only grow),
-- so a batch of sends touches about one page per channel.
-- (Version 9 is another change's; versions only need to grow.)
CREATE INDEX sends_by_channel ON sends (channel, at);

-- Who cancelled a message, so a re-plan can tell apart what it may bring back (issue #12,
-- class 5). `plan` is the only value: set when a re-plan cancels a pending message that is no
-- longer planned (its recipient left the audience, or its occurrence the schedule); such a
-- message is pending again when a later plan includes it. NULL on a cancelled message means
-- anything else (`disparo cancel`, or any future way to cancel): never brought back.
-- A column rather than the text of `last_error`: a human message is no state to branch on.
ALTER TABLE queue ADD COLUMN cancelled_by TEXT CHECK (cancelled_by IS NULL OR cancelled_by = 'plan');
-- Messages a re-plan cancelled before this column existed carry the re-plan's own wording.
UPDATE queue SET cancelled_by = 'plan'
 WHERE state = 'cancelled' AND last_error = 'no longer planned (removed from the audience or the schedule)';

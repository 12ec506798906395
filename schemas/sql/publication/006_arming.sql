-- The records whose timers are still to be put in Redis (workflow_arm_new reads it every
-- second): a draft's warning and deadline, a published penalty's expiry. A narrow queue
-- instead of flags on the record row: marking a flag rewrote the wide row and every one
-- of its index entries (20 ms for 500 drafts under load), and raced with approvals.
-- A record is queued by the statement that drafts, resubmits or publishes it; v tells a
-- record queued again meanwhile (approved while its draft timers were being armed) from
-- the entry workflow_arm_new read, which it then leaves for the next round.
CREATE SEQUENCE arming_v;
CREATE TABLE arming (
    id bigint PRIMARY KEY,
    v  bigint NOT NULL DEFAULT nextval('arming_v')
);
INSERT INTO arming (id)
    SELECT id FROM record
    WHERE (state = 'draft' AND NOT armed)
       OR (state = 'published' AND expires_on IS NOT NULL AND NOT expiry_armed);
DROP INDEX record_unarmed;
ALTER TABLE record DROP COLUMN armed, DROP COLUMN expiry_armed;

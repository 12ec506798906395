-- The drafts whose deadline timers, and the published penalties whose expiry timer, are
-- not yet in Redis: workflow_arm_new reads them every second (pub_unarmed). A statement
-- without parameters is planned once, often while the table is empty and unanalysed; with
-- this index matching its WHERE clause the plan is an ordered scan of these few rows, not
-- a sequential scan and sort of every record ever drafted.
CREATE INDEX record_unarmed ON record (id)
    WHERE (state = 'draft' AND NOT armed)
       OR (state = 'published' AND expires_on IS NOT NULL AND NOT expiry_armed);

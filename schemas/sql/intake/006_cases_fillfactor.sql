-- Room on each page of cases for its updates. A case row is updated at every step of its
-- life (proposed, served, executed, closed ...); only case.decide touches an indexed
-- column (decision_no). With full pages every other update was a new tuple elsewhere plus
-- an entry in each of the table's indexes; with room on the page it is a heap-only
-- (HOT) update: the new version beside the old, no index entries, a smaller WAL record.
-- Pages written from now on keep 20% free.
ALTER TABLE cases SET (fillfactor = 80);

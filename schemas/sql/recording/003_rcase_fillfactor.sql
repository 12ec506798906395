-- Room on each page of rcase for its updates: every appended entry moves the case's n,
-- head and stage, none of them indexed, so with room on the page the update is heap-only
-- (HOT): no new entries in rcase_pkey and rcase_agency. Pages written from now on keep
-- 30% free.
ALTER TABLE rcase SET (fillfactor = 70);

-- The case's own rows (case_record, case_proposal, inspection_result) lose their foreign
-- keys to cases, as case_deadline did in 004: each is written only by an op on a case
-- that op found and locked FOR UPDATE in the same transaction (case_ops.c,
-- s_load_cases), and cases are never deleted. The per-row check (a FOR KEY SHARE probe
-- of the case, run from an after-trigger per row) was 53,201 extra statements in a 25 s
-- make bench-pipeline, one per case.propose (pg_stat_statements).
ALTER TABLE case_record DROP CONSTRAINT case_record_case_id_fkey;
ALTER TABLE case_proposal DROP CONSTRAINT case_proposal_case_id_fkey;
ALTER TABLE inspection_result DROP CONSTRAINT inspection_result_case_id_fkey;

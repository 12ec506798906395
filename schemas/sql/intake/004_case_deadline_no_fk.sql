-- case_deadline loses its foreign key to cases: the row is written only by case.open, in
-- the same statement that inserts its case (from that insert's RETURNING), and cases are
-- never deleted; the per-row check (with its FOR KEY SHARE lock on the new case row) cost
-- about a fifth of that statement on the hot path (measured with make bench-intake).
ALTER TABLE case_deadline DROP CONSTRAINT case_deadline_case_id_fkey;

-- The statutory deadline (法定办理时限; 行政许可法 art. 42, 行政处罚法 art. 60) moves into the
-- case's own row: every case has exactly one, written by the case.open that inserts the
-- case and met by the decision that updates it. As a table of its own it cost every
-- case.open a second heap row and primary-key entry, and every case.decide a second
-- UPDATE (make bench-intake, pg_stat_statements); now case.open writes one row and
-- case.decide sets met_on in the case's one UPDATE, under the row lock it already holds.
--
-- due / warn_on are computed at case.open (services/intake/case_ops.c, case_deadline()):
-- due the last day of the limit, warn_on 3 working days before it; due_uncovered says the
-- count ran beyond the working-day calendar's years. met_on is set by case.decide
-- (inspection.result for inspections); the deadline is pending while met_on IS NULL.
-- warned_at / overdue_at are set by deadlines.c in the transaction that emits
-- case.deadline.warning / case.deadline.overdue (deadline_event makes each emit once).
ALTER TABLE cases ADD COLUMN due date,
                  ADD COLUMN warn_on date,
                  ADD COLUMN due_uncovered boolean,
                  ADD COLUMN met_on date,
                  ADD COLUMN warned_at timestamptz,
                  ADD COLUMN overdue_at timestamptz;

UPDATE cases c SET due = d.due, warn_on = d.warn_on, due_uncovered = d.uncovered,
                   met_on = d.met_on, warned_at = d.warned_at, overdue_at = d.overdue_at
  FROM case_deadline d WHERE d.case_id = c.id;

-- case.open has always written the deadline with its case.
ALTER TABLE cases ALTER COLUMN due SET NOT NULL,
                  ALTER COLUMN warn_on SET NOT NULL,
                  ALTER COLUMN due_uncovered SET NOT NULL;

DROP TABLE case_deadline;

-- deadlines.c arms its timers from the pending deadlines, in id order from a watermark:
-- this index holds only those, so a restart does not walk every decided case. A case
-- leaves it once (case.decide or inspection.result); the updates before that keep
-- met_on and stay heap-only.
CREATE INDEX cases_deadline_pending ON cases (id) WHERE met_on IS NULL;

-- The outbox's id keeps its sequence but loses its primary-key index. Nothing looks a row
-- up by id: readers go by seq (outbox_seq_key), the relay finds unsequenced rows through
-- outbox_pending in id order and updates what it locked by ctid. The index cost every
-- event an insert into it: intake's one outbox statement per turn took 10.6 us a row with
-- it (pg_stat_statements, make bench-intake).
ALTER TABLE outbox DROP CONSTRAINT outbox_pkey;

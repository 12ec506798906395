-- A check for a statement whose result nobody reads. bus_emit_batch_seq's INSERT is
-- queued to run with the transaction's next round trip (db_defer_prepared), often its
-- COMMIT, so the writer cannot count the rows it inserted before the commit. The
-- statement counts them itself and fails unless every event was written, which fails
-- the transaction before COMMIT can run.
CREATE FUNCTION bus_check(ok boolean, what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'bus: %', what;
    END IF;
    RETURN true;
END
$$;

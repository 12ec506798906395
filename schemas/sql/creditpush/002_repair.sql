-- creditpush: credit repair (信用修复) of a penalty already sent becomes a third item,
-- op 'repair', version 3 (key "<record_id>-3"): the record's status change on the
-- platform, after its record like a withdrawal.
ALTER TABLE item DROP CONSTRAINT item_op_check;
ALTER TABLE item ADD CONSTRAINT item_op_check CHECK (op IN ('publish', 'withdraw', 'repair'));

-- The export (sxctl credit export) reads records by decision date.
CREATE INDEX item_export ON item ((coalesce(data ->> 'CF_JDRQ', data ->> 'XK_JDRQ')), id)
    WHERE op = 'publish' AND data IS NOT NULL;

-- The rpc's tables, created in every service's own schema (common/rpc.h: rpc_migrate,
-- the migration set "rpc").

-- Every reply to a write request (ok or error), keyed by who asked and their
-- idempotency key. A request whose (identity, rid) is here is answered with `reply`
-- again, byte for byte, and runs nothing; if its payload's SHA-256 differs from
-- req_hash it is refused as rid_reused. Rows are written in the transaction that makes
-- the request's effects, so the effects and the stored reply commit together.
--
-- Retention: rows are kept until pruned. A client may resend a rid only while its row
-- exists; the contract (schemas/messages/rpc.md) promises at least 7 days. Pruning is
-- by created_at (a BRIN index: cheap to keep up on an append-mostly table).
CREATE TABLE rpc_reply (
    identity   text        NOT NULL CHECK (octet_length(identity) BETWEEN 1 AND 64),
    rid        text        NOT NULL CHECK (octet_length(rid) BETWEEN 1 AND 64),
    req_hash   bytea       NOT NULL CHECK (octet_length(req_hash) = 32),
    op         text        NOT NULL CHECK (octet_length(op) BETWEEN 1 AND 64),
    ok         boolean     NOT NULL,
    reply      bytea       NOT NULL CHECK (octet_length(reply) <= 65536),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (identity, rid)
);
CREATE INDEX rpc_reply_created ON rpc_reply USING brin (created_at);

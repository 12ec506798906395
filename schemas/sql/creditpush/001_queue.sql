-- creditpush: the durable queue of 双公示 pushes to the credit-information platform.
-- Filled in the transaction that advances the publication cursor (exactly once per
-- event); emptied by the deliverer. Postgres holds next_at (the truth); the Redis timer
-- only wakes the deliverer.
CREATE TABLE item (
    id         bigserial PRIMARY KEY,
    record_id  bigint NOT NULL,              -- publication.record.id
    op         text NOT NULL CHECK (op IN ('publish', 'withdraw')),
    version    int NOT NULL,                 -- 1 publish, 2 withdraw (撤销)
    idem_key   text NOT NULL UNIQUE,         -- "<record_id>-<version>", sent with every try
    kind       text NOT NULL CHECK (kind IN ('penalty', 'licence')),
    agency     text NOT NULL,                -- 18-character 统一社会信用代码 of the topic
    decision_no text NOT NULL DEFAULT '',
    priority   smallint NOT NULL DEFAULT 1,  -- 0: key domain (重点领域), sent first
    serious    boolean NOT NULL DEFAULT false, -- 严重违法失信: flagged for the blacklist
    data       jsonb,                        -- the CF_*/XK_* fields; NULL when it could not be built
    state      text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'dead')),
    attempts   int NOT NULL DEFAULT 0,
    next_at    timestamptz NOT NULL DEFAULT now(),
    reason     text,                          -- why dead, or the last retry's cause
    answer     text,                          -- the platform's answer, as it came
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz,
    UNIQUE (record_id, op)
);

-- The deliverer's pick: queued and due, key domains first, oldest first.
CREATE INDEX item_queued ON item (priority, id) WHERE state = 'queued';
CREATE INDEX item_dead ON item (id) WHERE state = 'dead';

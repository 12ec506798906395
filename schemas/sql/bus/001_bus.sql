-- The bus's tables, created in every service's own schema (common/bus.h: bus_migrate).
-- Producers: outbox, bus_head, bus_agency. Consumers: bus_cursor, bus_rejected.

-- The outbox: an event is written in the same transaction as the state change it
-- reports. seq/aseq/at stay NULL until the relay (the stream's one sequencer) gives the
-- committed row its place in the stream, in the same statement that moves bus_head on.
CREATE TABLE outbox (
    id     bigserial PRIMARY KEY,
    topic  text    NOT NULL CHECK (octet_length(topic) BETWEEN 20 AND 128),
    agency text    NOT NULL CHECK (octet_length(agency) = 18),
    v      integer NOT NULL CHECK (v >= 1),
    data   bytea   NOT NULL CHECK (octet_length(data) <= 65536),
    seq    bigint  UNIQUE,
    aseq   bigint,
    at     bigint,
    CHECK ((seq IS NULL) = (aseq IS NULL) AND (seq IS NULL) = (at IS NULL))
);
CREATE INDEX outbox_pending ON outbox (id) WHERE seq IS NULL;

-- The stream's last seq: seqs 1..last_seq all exist and are committed.
CREATE TABLE bus_head (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    last_seq bigint  NOT NULL CHECK (last_seq >= 0)
);
INSERT INTO bus_head (one, last_seq) VALUES (true, 0);

-- The last aseq per agency: a department that sees only its own topics still sees a
-- gapless count.
CREATE TABLE bus_agency (
    agency    text   PRIMARY KEY,
    last_aseq bigint NOT NULL CHECK (last_aseq >= 0)
);

-- One notification per inserting statement wakes the relay (LISTEN sx_outbox_<schema>);
-- a timer in the relay is the fallback.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sx_outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- A consumer's place in each stream it reads, per shard. Advanced in the transaction
-- that applies the events, which is what makes each event's effects happen once.
CREATE TABLE bus_cursor (
    stream     text    NOT NULL,
    shard      integer NOT NULL CHECK (shard >= 0),
    nshards    integer NOT NULL CHECK (nshards >= 1 AND shard < nshards),
    seq        bigint  NOT NULL CHECK (seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, shard, nshards)
);

-- Events a consumer's handler refused for good (BUS_REJECT), with its reason, so that
-- an operator can see them and the stream does not stall on one bad event.
CREATE TABLE bus_rejected (
    stream      text   NOT NULL,
    seq         bigint NOT NULL,
    topic       text   NOT NULL,
    reason      text   NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, seq)
);

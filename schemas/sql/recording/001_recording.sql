-- The whole-process record (执法全过程记录) as sx-recording keeps it: a hash chain of
-- entries per case built from intake's case events, the AV matter list (音像记录事项清单)
-- copied from registry.av_matter events, AV compliance gaps, sealed archive manifests
-- (归档) and the append-only access log (调阅监督). Contract:
-- schemas/messages/recording.md. Written by services/recording/events.c (entries, cases,
-- gaps, archives) and access.c (access_log).
--
-- Requires the bus set (schemas/sql/bus, bus_migrate) in this schema: the subscriber's
-- cursor and recording's own outbox.

-- Refuses UPDATE and DELETE (and TRUNCATE) on the append-only tables. The owner can still
-- disable the trigger; that is what record.verify and the archive seal are for.
CREATE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- One case as the recording service knows it: its chain's length and head, and what the
-- AV rules need (av_rules.h). The head is carried on every record.appended event.
CREATE TABLE rcase (
    case_id     bigint PRIMARY KEY,
    agency      char(18) NOT NULL,
    case_no     text NOT NULL,
    matter_code text NOT NULL,
    type        text NOT NULL,
    n           integer NOT NULL CHECK (n >= 0),       -- entries in the chain
    head        bytea NOT NULL CHECK (octet_length(head) = 32),  -- hash of entry n
    stage       smallint NOT NULL,  -- highest stage reached (-1 none, 0 start .. 3 service_execution)
    checked     smallint NOT NULL,  -- stages below this have had their AV check
    av_mask     smallint NOT NULL,  -- bit s: an audio or video record exists for stage s
    flags       smallint NOT NULL,  -- av_rules.h AV_F_*: on-site coercion, hearing, 留置送达
    closed_at   bigint,             -- the case.closed event's time (unix ms), NULL while open
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rcase_agency ON rcase (agency, case_id);

-- The chain: entry n of a case, its canonical bytes (chain.h) and
-- hash = SHA-256(hash of entry n-1 || body). stage and classification are copies of the
-- body's, for queries; record.verify checks they agree with it.
CREATE TABLE entry (
    case_id        bigint NOT NULL,
    n              integer NOT NULL CHECK (n >= 1),
    event          text NOT NULL,
    stage          text,
    classification text,
    seq            bigint NOT NULL,  -- the intake event's seq: one entry per event
    body           bytea NOT NULL,
    hash           bytea NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (case_id, n)
);
CREATE UNIQUE INDEX entry_seq ON entry (seq);
CREATE TRIGGER entry_append_only BEFORE UPDATE OR DELETE ON entry
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER entry_no_truncate BEFORE TRUNCATE ON entry
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();

-- 音像记录事项清单, per agency and matter: the highest version seen of intake's
-- registry.av_matter events (recording never reads intake's tables).
CREATE TABLE av_matter (
    agency      char(18) NOT NULL,
    matter_code text NOT NULL,
    stages      text[] NOT NULL,
    active      boolean NOT NULL,
    version     integer NOT NULL,
    PRIMARY KEY (agency, matter_code)
);

-- A missing audio/video record: (case, stage, rule), opened at a stage change or at
-- close, closed by a late AV record of that stage. Kept for statistics and supervision.
CREATE TABLE gap (
    case_id    bigint NOT NULL,
    agency     char(18) NOT NULL,
    stage      text NOT NULL,
    rule       text NOT NULL,
    opened_at  bigint NOT NULL,  -- the event time (unix ms) that revealed it
    closed_at  bigint,           -- the late record's event time
    closed_by  integer,          -- the entry n of the late record
    PRIMARY KEY (case_id, stage, rule)
);
CREATE INDEX gap_open ON gap (agency) WHERE closed_at IS NULL;

-- Roles (the last segment of dept:<code>:<role>) an agency allows to see the details of
-- its `sensitive` records (国家秘密/商业秘密/个人隐私). legal_office always may.
CREATE TABLE classified_role (
    agency char(18) NOT NULL,
    role   text NOT NULL,
    PRIMARY KEY (agency, role)
);

-- The archive (归档) at case.closed: the manifest (canonical msgpack: every entry's n and
-- hash, the head, the closing time) and its Ed25519 signature by the service's key.
CREATE TABLE archive (
    case_id    bigint PRIMARY KEY,
    agency     char(18) NOT NULL,
    case_no    text NOT NULL,
    n          integer NOT NULL,
    head       bytea NOT NULL,
    closed_at  bigint NOT NULL,
    manifest   bytea NOT NULL,
    signature  bytea NOT NULL CHECK (octet_length(signature) = 64),
    public_key bytea NOT NULL CHECK (octet_length(public_key) = 32),
    sealed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER archive_append_only BEFORE UPDATE OR DELETE ON archive
    FOR EACH ROW EXECUTE FUNCTION append_only();

-- 调阅监督: every retrieval (record.get, record.verify), allowed or refused, written in
-- the transaction that answers it, before the answer is sent.
CREATE TABLE access_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    identity  text NOT NULL,       -- the caller's CURVE identity
    op        text NOT NULL,
    rid       text NOT NULL,
    case_id   bigint,              -- NULL when the request did not name one readably
    agency    char(18),            -- the case's agency, when the case exists
    reason    text,                -- the stated reason (调阅事由)
    allowed   boolean NOT NULL,
    outcome   text NOT NULL        -- ok, or the error code answered
);
CREATE INDEX access_log_case ON access_log (case_id, id);
CREATE INDEX access_log_identity ON access_log (identity, id);
CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();

-- The life of a case (执法案件): cases, their whole-process records (执法全过程记录), the
-- proposed decisions and their legal-review verdicts (重大执法决定法制审核), inspection
-- results (双随机一公开) and the statutory deadlines. Written by services/intake/case_ops.c
-- (the ops of schemas/messages/intake/case.md); review_verdict is written by intake's
-- review-event subscriber and case_deadline's warned_at/overdue_at by deadlines.c.
--
-- Requires the bus set (schemas/sql/bus, bus_migrate) applied to this schema first: the
-- last statement indexes its outbox for events.since.
--
-- No foreign keys to the registry tables: a case keeps the matter code and version it was
-- opened under, registry rows are never deleted (they are retired, active = false), and a
-- per-row FK check (with its row lock on the matter) would cost the hot case.open path
-- for nothing the handler does not already check in the same transaction.

-- One enforcement case. id is sanxiang's case_id; (agency, case_no) the agency's own.
CREATE TABLE cases (
    id               bigserial PRIMARY KEY,
    agency           char(18) NOT NULL,
    case_no          text NOT NULL CHECK (octet_length(case_no) BETWEEN 1 AND 64),
    type             text NOT NULL CHECK (type IN ('licence', 'penalty', 'coercion', 'inspection', 'levy')),
    matter_code      text NOT NULL,
    matter_version   integer NOT NULL,
    state            text NOT NULL CHECK (state IN ('open', 'proposed', 'decided', 'served',
                                                    'executed', 'resulted', 'closed', 'revoked')),
    -- 行政相对人 (the party)
    party_kind       text NOT NULL CHECK (party_kind IN ('person', 'org')),
    party_name       text NOT NULL,
    party_id_type    text NOT NULL,
    party_id_no      text NOT NULL,
    summary          text,               -- 案由
    on_site          boolean NOT NULL,   -- 现场执法
    act_date         date,               -- the on-site act's date
    officers         text[] NOT NULL,    -- certificate numbers (执法证号)
    opened_on        date NOT NULL,      -- 立案/受理 date
    proposal_version integer NOT NULL DEFAULT 0 CHECK (proposal_version >= 0), -- latest; 0 none
    record_count     integer NOT NULL DEFAULT 0 CHECK (record_count >= 0),
    -- the decision (决定)
    decided_version  integer,
    decision_no      text,               -- 决定书文号
    decision_date    date,
    served_on        date,
    serve_method     text,
    executed_on      date,
    execute_method   text,
    closed_on        date,
    close_note       text,
    revoke_kind      text CHECK (revoke_kind IN ('revoke', 'confirm_illegal', 'change', 'invalid')),
    revoke_reason    text,
    revoked_on       date,
    opened_by        text NOT NULL,      -- the identity that opened it
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agency, case_no)
);
-- A decision number (文号) is the agency's and names one decision.
CREATE UNIQUE INDEX cases_decision_no ON cases (agency, decision_no) WHERE decision_no IS NOT NULL;

-- The whole-process record (执法全过程记录): one row per text or audio/video record, numbered
-- per case (record_no 1, 2, ...) in arrival order; the recording service hash-chains them
-- from case.recorded events.
CREATE TABLE case_record (
    case_id        bigint NOT NULL REFERENCES cases (id),
    record_no      integer NOT NULL CHECK (record_no >= 1),
    stage          text NOT NULL CHECK (stage IN ('start', 'investigation', 'review_decision',
                                                  'service_execution')),
    kind           text NOT NULL CHECK (kind IN ('text', 'audio', 'video', 'photo')),
    doc_type       text NOT NULL,        -- 文书/记录类型, e.g. 现场检查笔录
    officers       text[] NOT NULL,
    device         text,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz NOT NULL CHECK (ended_at >= started_at),
    media_sha256   text NOT NULL CHECK (media_sha256 ~ '^[0-9a-f]{64}$'),
    media_uri      text NOT NULL,
    media_size     bigint NOT NULL CHECK (media_size >= 0),
    classification text NOT NULL CHECK (classification IN ('public', 'internal', 'sensitive')),
    recorded_by    text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, record_no)
);

-- Proposed decisions (拟作出的决定), one row per version (1, 2, ...): the resubmission loop of
-- legal review makes a new version, never changes one. requires_review and review_rules
-- are the decision gate's finding when the version was proposed (services/intake/
-- decision_gate.c); case.decide uses them as they were, since that is what was reviewed.
CREATE TABLE case_proposal (
    case_id               bigint NOT NULL REFERENCES cases (id),
    version               integer NOT NULL CHECK (version >= 1),
    category              text NOT NULL,  -- 处罚类别 / 许可类别 ...
    content               text NOT NULL,
    fine                  numeric(18, 6) NOT NULL CHECK (fine >= 0),          -- 万元
    confiscation          numeric(18, 6) NOT NULL CHECK (confiscation >= 0),  -- 万元
    legal_basis           text NOT NULL,
    violation_code        text,
    circumstance          text CHECK (circumstance IN ('minor', 'general', 'serious')),
    hearing               boolean NOT NULL,
    major_public_interest boolean NOT NULL,
    social_risk           boolean NOT NULL,
    complex               boolean NOT NULL,
    band_min              numeric(18, 6), -- the discretion band found (自由裁量基准), or NULL
    band_max              numeric(18, 6),
    deviation_reason      text,           -- why the fine leaves the band (then reviewed)
    requires_review       boolean NOT NULL,
    review_rules          text[] NOT NULL, -- review_rule ids that matched (+ 'discretion_deviation')
    proposed_by           text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, version)
);

-- Legal-review verdicts (法制审核意见), from the review service's events. WRITTEN BY intake's
-- review-event subscriber (main.c), one row per reviewed proposal version:
--
--   INSERT INTO intake.review_verdict (case_id, proposal_version, agency, verdict,
--                                      opinion, reviewer, at, review_seq)
--   VALUES (...) ON CONFLICT (case_id, proposal_version) DO NOTHING;
--
-- A verdict on a version is final: the first one stays (a replayed event is harmless); a
-- returned version is answered by a new proposal version, which needs its own verdict.
-- agency is the agency code of the review event's topic; the gate ignores a verdict whose
-- agency is not the case's. No foreign key, so that an event for a case this database does
-- not hold cannot stall the subscriber; such a row is simply never consulted.
--
-- case.decide (decision_gate.c) reads it: allowed when the latest proposal does not
-- require review or this table holds 'approved' for (case, latest version);
-- `review_required` when it holds 'returned'; `review_pending` when it holds nothing.
CREATE TABLE review_verdict (
    case_id          bigint NOT NULL,
    proposal_version integer NOT NULL CHECK (proposal_version >= 1),
    agency           char(18) NOT NULL,
    verdict          text NOT NULL CHECK (verdict IN ('approved', 'returned')),
    opinion          text NOT NULL DEFAULT '',  -- 法制审核意见 (summary or document number)
    reviewer         text NOT NULL DEFAULT '',  -- reviewer's certificate number or identity
    at               timestamptz NOT NULL,      -- when the review service gave it
    review_seq       bigint,                    -- seq of the review event (tracing)
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, proposal_version)
);

-- 双随机一公开 results of inspection cases (inspection.result).
CREATE TABLE inspection_result (
    case_id     bigint PRIMARY KEY REFERENCES cases (id),
    result_date date NOT NULL,
    subject     text NOT NULL,   -- the inspected subject (检查对象)
    result      text NOT NULL CHECK (result IN ('compliant', 'problems_found', 'not_located', 'refused')),
    problems    text,            -- 发现的问题
    handled     text,            -- 处理情况
    recorded_by text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Statutory deadlines (法定办理时限), one per case, from the matter's time limit at
-- case.open: due = the last day (working days: the n-th working day after opened_on, the
-- start day not counted; calendar days: opened_on + n); warn_on = 3 working days before
-- due. met_on is set when the case reaches its decision (case.decide; inspection.result
-- for inspections); a deadline is pending while met_on IS NULL.
--
-- deadlines.c (main.c's timers) READS pending rows to arm and re-arm its timers
-- (SELECT case_id, agency, due, warn_on FROM intake.case_deadline WHERE met_on IS NULL),
-- new ones as case.opened events carry them (data.deadline, data.deadline_warn_on), and
-- WRITES warned_at / overdue_at in the transaction that emits case.deadline.warning /
-- case.deadline.overdue, acting only while met_on IS NULL and the column is still NULL
-- (so a timer that fires twice emits once).
CREATE TABLE case_deadline (
    case_id    bigint PRIMARY KEY REFERENCES cases (id),
    agency     char(18) NOT NULL,
    due        date NOT NULL,
    warn_on    date NOT NULL,
    uncovered  boolean NOT NULL,  -- counted partly beyond the working-day calendar's years
    met_on     date,
    warned_at  timestamptz,
    overdue_at timestamptz
);

-- events.since: a department re-reads its own sequenced events by aseq.
CREATE INDEX outbox_agency_aseq ON outbox (agency, aseq) WHERE aseq IS NOT NULL;

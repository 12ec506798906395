-- sx-publication's own tables (执法公示). It keeps its own copies of what it needs from
-- stream "intake" (never reads intake's tables).

-- Agencies (执法机关) by code, from registry.agency events: the name shown as 执法机关.
CREATE TABLE agency (
    code    text PRIMARY KEY,
    name    text NOT NULL,
    version int  NOT NULL
);

-- Officers (执法人员), from registry.officer events: what the public verifies a
-- certificate number against (事中公示: valid, expired or unknown).
CREATE TABLE officer (
    agency     text NOT NULL,
    cert_no    text NOT NULL,
    name       text NOT NULL,
    area       text NOT NULL,
    valid_from date NOT NULL,
    valid_to   date NOT NULL,
    active     bool NOT NULL,
    version    int  NOT NULL,
    PRIMARY KEY (agency, cert_no)
);
CREATE INDEX officer_cert ON officer (cert_no);

-- The party (行政相对人) and summary of each case, from case.opened, unmasked: masking
-- happens when the public record is built, so the rules can change without losing data.
CREATE TABLE party (
    agency   text   NOT NULL,
    case_id  bigint NOT NULL,
    case_no  text   NOT NULL,
    kind     text   NOT NULL CHECK (kind IN ('person', 'org')),
    name     text   NOT NULL,
    id_type  text   NOT NULL,
    id_no    text   NOT NULL,
    summary  text,
    PRIMARY KEY (agency, case_id)
);

-- One after-publication (事后公开) record per decided case. body is exactly what the
-- public sees (masked); the columns beside it are what search filters on.
--   draft -> published (publication.approve) | rejected (publication.reject)
--   draft/published -> withdrawn (case.revoked)
--   published -> expired (expires_on passed: 信用修复管理办法 maximum period)
--   published -> repaired (publication.repair after the minimum period: 信用修复)
--   exempt: a 轻微 (minor) penalty, not published (信用修复管理办法)
CREATE TABLE record (
    id               bigserial PRIMARY KEY,
    agency           text    NOT NULL,
    case_id          bigint  NOT NULL,
    case_no          text    NOT NULL,
    type             text    NOT NULL,
    decision_no      text    NOT NULL,
    decision_date    date    NOT NULL,
    party_name       text    NOT NULL, -- as published: masked for natural persons
    party_uscc       text,             -- organisations with a USCC only
    body             jsonb   NOT NULL,
    state            text    NOT NULL DEFAULT 'draft'
                     CHECK (state IN ('draft', 'published', 'rejected', 'withdrawn', 'expired',
                                      'exempt', 'repaired')),
    expires_on       date,             -- last day of publication (CF_GSJZQ), penalties only
    repair_from      date,             -- credit repair (信用修复) possible from, penalties only
    repair_reason    text,
    expiry_armed     bool    NOT NULL DEFAULT false,
    expired_at       timestamptz,
    due_on           date    NOT NULL, -- 7 or 20 working days (嘉政办发〔2019〕56号 item 5)
    warn_on          date    NOT NULL, -- 2 working days before due_on
    due_uncovered    bool    NOT NULL DEFAULT false,
    armed            bool    NOT NULL DEFAULT false, -- its timers are in Redis
    warned           bool    NOT NULL DEFAULT false,
    overdue          bool    NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    decided_by       text,             -- identity that approved or rejected
    published_at     timestamptz,
    rejected_reason  text,
    withdrawn_kind   text,
    withdrawn_reason text,
    withdrawn_on     date,
    withdrawn_at     timestamptz,
    version          int     NOT NULL DEFAULT 1, -- bumped on each change: the ETag
    UNIQUE (agency, case_id)
);

CREATE INDEX record_pub_date ON record (decision_date DESC, id DESC) WHERE state = 'published';
CREATE INDEX record_pub_agency ON record (agency, decision_date DESC) WHERE state = 'published';
CREATE INDEX record_pub_uscc ON record (party_uscc) WHERE state = 'published';
CREATE INDEX record_draft ON record (id) WHERE state = 'draft';
CREATE INDEX record_expiry ON record (id) WHERE state = 'published' AND expires_on IS NOT NULL;

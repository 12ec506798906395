-- The review service's (法制审核) own copies of the agency data it needs, kept from the
-- registry events of stream "intake" (never read from intake's tables), and its tasks.

-- The agency (执法机构): what catalogue rules compare against, and its review time.
CREATE TABLE agency (
    code        text PRIMARY KEY,
    domain      text NOT NULL,
    level       text NOT NULL,
    version     int  NOT NULL,
    review_days int  NOT NULL DEFAULT 5 CHECK (review_days BETWEEN 1 AND 60)
);

-- The city-wide reviewer database (全市法制审核人员数据库, item 13): every officer of
-- every agency, with the flags that make one a reviewer. Officers of the pool agency
-- (SX_REVIEW_POOL_AGENCY, the legal office) flagged reviewer are the city pool of
-- 法律顾问 / 公职律师 (item 19).
CREATE TABLE officer (
    agency          text    NOT NULL,
    cert_no         text    NOT NULL,
    name            text    NOT NULL,
    legal_qualified bool    NOT NULL,
    reviewer        bool    NOT NULL,
    active          bool    NOT NULL,
    version         int     NOT NULL,
    PRIMARY KEY (agency, cert_no)
);

-- The review catalogue (重大执法决定法制审核目录清单, item 14). NULL criterion = any.
CREATE TABLE rule (
    agency                text    NOT NULL,
    id                    text    NOT NULL,
    description           text    NOT NULL,
    case_type             text,
    domain                text,
    level                 text,
    amount_threshold      numeric(24, 6),
    hearing               bool,
    major_public_interest bool,
    social_risk           bool,
    complex               bool,
    active                bool    NOT NULL,
    version               int     NOT NULL,
    PRIMARY KEY (agency, id)
);

-- Discretion standards (自由裁量基准, item 16).
CREATE TABLE band (
    agency         text NOT NULL,
    violation_code text NOT NULL,
    circumstance   text NOT NULL,
    fine_min       numeric(24, 6) NOT NULL,
    fine_max       numeric(24, 6) NOT NULL,
    active         bool NOT NULL,
    version        int  NOT NULL,
    PRIMARY KEY (agency, violation_code, circumstance)
);

-- Officers who handled a case (case.opened / case.recorded): never its reviewer.
CREATE TABLE case_officer (
    case_id bigint NOT NULL,
    cert_no text   NOT NULL,
    PRIMARY KEY (case_id, cert_no)
);

-- Fines decided (case.decided), for 同案不同罚: recent decisions per violation.
CREATE TABLE decided_fine (
    case_id        bigint PRIMARY KEY,
    agency         text   NOT NULL,
    violation_code text   NOT NULL,
    circumstance   text   NOT NULL,
    fine           numeric(24, 6) NOT NULL,
    decided_at     timestamptz NOT NULL
);
CREATE INDEX decided_fine_recent ON decided_fine (agency, violation_code, circumstance, decided_at);

-- Every proposal version judged: required or not, and why. One row per version, so a
-- replayed case.proposed changes nothing.
CREATE TABLE judgement (
    case_id  bigint NOT NULL,
    version  int    NOT NULL,
    agency   text   NOT NULL,
    required bool   NOT NULL,
    rules    text[] NOT NULL,
    reason   text   NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, version)
);

-- A review task (审核任务): one per proposal version that requires review, plus one per
-- escalation to the legal office (kind 'escalated').
CREATE TABLE task (
    id              bigserial PRIMARY KEY,
    case_id         bigint NOT NULL,
    version         int    NOT NULL,
    kind            text   NOT NULL DEFAULT 'review' CHECK (kind IN ('review', 'escalated')),
    agency          text   NOT NULL,
    case_no         text   NOT NULL,
    case_type       text   NOT NULL,
    proposal        bytea  NOT NULL, -- the case.proposed data, msgpack, as received
    rules           text[] NOT NULL,
    reviewer_agency text   NOT NULL,
    reviewer        text,            -- cert_no; NULL: the legal office as a body
    pool            bool   NOT NULL DEFAULT false,
    flags           text[] NOT NULL DEFAULT '{}', -- discretion: out_of_band, unlike_recent
    flag_note       text   NOT NULL DEFAULT '',
    status          text   NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'approved', 'returned', 'referred', 'superseded')),
    due_on          date   NOT NULL,
    warn_on         date   NOT NULL,
    warned          bool   NOT NULL DEFAULT false,
    overdue         bool   NOT NULL DEFAULT false,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    closed_at       timestamptz,
    UNIQUE (case_id, version, kind)
);
CREATE INDEX task_open ON task (reviewer_agency, reviewer) WHERE status = 'open';

-- The written opinion (法制审核意见书), rendered and kept.
CREATE TABLE opinion (
    task_id  bigint PRIMARY KEY REFERENCES task (id),
    identity text   NOT NULL,
    reviewer text   NOT NULL,
    verdict  text   NOT NULL CHECK (verdict IN ('approve', 'problems', 'refer')),
    points   bytea  NOT NULL, -- the seven points as sent, msgpack
    text     text   NOT NULL,
    html     text   NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);

-- Statistics (统计年报), the re-draft after a reject, and the agency's switch for 轻微
-- penalties.
--
-- The figures are counted from facts, never from running counters: each fact row is keyed
-- by what makes it one fact (a case, a proposal version and an outcome, a gap), and every
-- insert is ON CONFLICT DO NOTHING, so an event delivered twice (a replay after a crash,
-- a cursor reset) counts once.

-- Per-agency publication settings (publication.settings). publish_minor: 信用修复管理办法
-- says 轻微 (minor) penalties are not published unless the agency sets otherwise.
CREATE TABLE agency_setting (
    agency        text PRIMARY KEY,
    publish_minor bool        NOT NULL DEFAULT false,
    updated_by    text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The workflow's history on the record: how often the publisher rejected it and how often
-- it was corrected and resubmitted (publication.resubmit); when credit repair took it down.
ALTER TABLE record ADD COLUMN rejections    int NOT NULL DEFAULT 0;
ALTER TABLE record ADD COLUMN resubmissions int NOT NULL DEFAULT 0;
ALTER TABLE record ADD COLUMN repaired_at   timestamptz;
CREATE INDEX record_agency_decided ON record (agency, decision_date);

-- Cases opened (case.opened), by type: 案件数 per period.
CREATE TABLE stat_case (
    agency    text   NOT NULL,
    case_id   bigint NOT NULL,
    type      text   NOT NULL,
    opened_on date   NOT NULL,
    PRIMARY KEY (agency, case_id)
);

-- Proposals (case.proposed): each version is a review request when review does not
-- answer it with review.not_required.
CREATE TABLE stat_proposal (
    agency          text   NOT NULL,
    case_id         bigint NOT NULL,
    version         int    NOT NULL,
    proposed_on     date   NOT NULL, -- the event's day, China time
    requires_review bool   NOT NULL, -- intake's own finding
    PRIMARY KEY (agency, case_id, version)
);

-- Review outcomes (stream review): one row per proposal version and outcome.
CREATE TABLE stat_review (
    agency           text   NOT NULL,
    case_id          bigint NOT NULL,
    proposal_version int    NOT NULL,
    outcome          text   NOT NULL CHECK (outcome IN ('not_required', 'approved', 'returned',
                                                        'referred', 'escalated', 'overdue')),
    on_day           date   NOT NULL, -- the event's day, China time
    PRIMARY KEY (agency, case_id, proposal_version, outcome)
);
CREATE INDEX stat_review_day ON stat_review (agency, on_day);

-- Audio/video record gaps (stream recording: record.gap, record.gap_closed).
CREATE TABLE stat_gap (
    agency    text   NOT NULL,
    case_id   bigint NOT NULL,
    stage     text   NOT NULL,
    rule      text   NOT NULL,
    opened_on date   NOT NULL,
    closed_on date,
    PRIMARY KEY (agency, case_id, stage, rule)
);

-- Statutory case deadlines missed (case.deadline.overdue).
CREATE TABLE stat_deadline (
    agency   text   NOT NULL,
    case_id  bigint NOT NULL,
    deadline date   NOT NULL,
    on_day   date   NOT NULL,
    PRIMARY KEY (agency, case_id, deadline)
);

-- Generated reports: one per agency and period ('2026H1': the first half-year, due Jul 10;
-- '2026': the year, due Jan 10 of the next), made when the period ends.
CREATE TABLE stat_report (
    agency       text        NOT NULL,
    period       text        NOT NULL,
    from_day     date        NOT NULL,
    to_day       date        NOT NULL,
    due_on       date        NOT NULL,
    generated_at timestamptz NOT NULL DEFAULT now(),
    body         jsonb       NOT NULL,
    PRIMARY KEY (agency, period)
);

-- A period's generation ran (once, whichever instance's timer fired first).
CREATE TABLE stat_run (
    period       text PRIMARY KEY,
    agencies     int         NOT NULL,
    generated_at timestamptz NOT NULL DEFAULT now()
);

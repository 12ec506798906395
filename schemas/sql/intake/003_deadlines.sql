-- Deadlines (services/intake/deadlines.c): which deadline events have been emitted.
-- The statutory limit of a case (法定办理时限, e.g. 行政许可法 art. 42: 20 working days;
-- 行政处罚法 art. 60: 90 days) is the case row's own deadline; timers in Redis say when to
-- look. A row here is written in the transaction that emits the event, so each
-- warning and each overdue event leaves once per deadline, however often a timer fires.
-- An extended deadline (延长期限) is a new deadline: it gets its own events.
CREATE TABLE deadline_event (
    case_id    bigint      NOT NULL REFERENCES cases (id),
    kind       text        NOT NULL CHECK (kind IN ('warning', 'overdue')),
    deadline   date        NOT NULL,
    emitted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, kind, deadline)
);

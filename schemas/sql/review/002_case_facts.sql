-- What review keeps of a case beyond its handlers: the statutory deadline (case.opened),
-- so a review that would end after it is flagged (办案与审核总时间不超过法定办案期限,
-- 嘉政办发〔2019〕56号 item 17), and its records per stage (case.recorded), which the
-- reviewer sees in review.get.
CREATE TABLE case_deadline (
    case_id  bigint PRIMARY KEY,
    deadline date   NOT NULL
);

CREATE TABLE case_record (
    case_id   bigint NOT NULL,
    record_no int    NOT NULL,
    stage     text   NOT NULL,
    PRIMARY KEY (case_id, record_no)
);

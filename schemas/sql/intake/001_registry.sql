-- The registry: the five lists (五个清单) and what they rest on, per agency, as intake
-- keeps them (嘉政办发〔2019〕56号, 四(二): 执法机构及其主要负责人清单, 行政执法事项清单,
-- 随机抽查事项清单, 音像记录事项清单, 重大执法决定法制审核目录清单; plus the officers and
-- the discretion standards, 自由裁量基准, item 16). Every change is versioned: the row holds
-- the current version, registry_change every version as submitted.

-- 执法机构及主要负责人清单: the agency, keyed by its 统一社会信用代码.
CREATE TABLE agency (
    code        char(18) PRIMARY KEY,
    name        text NOT NULL,
    level       text NOT NULL CHECK (level IN ('province', 'city', 'district', 'county', 'township')),
    domain      text NOT NULL,  -- 执法领域, e.g. 市场监管
    head_name   text NOT NULL,  -- 主要负责人
    head_title  text NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL
);

-- Enforcement officers (执法人员) and their certificates (执法证).
CREATE TABLE officer (
    agency          char(18) NOT NULL REFERENCES agency (code),
    cert_no         text NOT NULL,  -- 执法证号
    name            text NOT NULL,
    valid_from      date NOT NULL,
    valid_to        date NOT NULL,
    area            text NOT NULL,  -- 执法区域
    legal_qualified boolean NOT NULL DEFAULT false,  -- 法律职业资格
    reviewer        boolean NOT NULL DEFAULT false,  -- 法制审核人员
    active          boolean NOT NULL DEFAULT true,
    version         integer NOT NULL CHECK (version >= 1),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text NOT NULL,
    PRIMARY KEY (agency, cert_no),
    CHECK (valid_to >= valid_from)
);

-- 行政执法事项清单: the matters an agency may act on.
CREATE TABLE matter (
    agency          char(18) NOT NULL REFERENCES agency (code),
    code            text NOT NULL,
    name            text NOT NULL,
    type            text NOT NULL CHECK (type IN ('licence', 'penalty', 'coercion', 'inspection', 'levy')),
    legal_basis     text NOT NULL,
    accepting_body  text NOT NULL,  -- 受理机构
    approving_body  text NOT NULL,  -- 审批机构
    conditions      text NOT NULL,  -- 受理条件
    time_limit      integer NOT NULL CHECK (time_limit >= 1),  -- 法定办理时限
    time_limit_unit text NOT NULL CHECK (time_limit_unit IN ('workday', 'day')),
    guide           text NOT NULL,  -- 服务指南
    active          boolean NOT NULL DEFAULT true,
    version         integer NOT NULL CHECK (version >= 1),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text NOT NULL,
    PRIMARY KEY (agency, code)
);

-- 随机抽查事项清单 (双随机、一公开).
CREATE TABLE inspection_item (
    agency      char(18) NOT NULL REFERENCES agency (code),
    code        text NOT NULL,
    name        text NOT NULL,
    basis       text NOT NULL,  -- 抽查依据
    subjects    text NOT NULL,  -- 抽查对象
    method      text NOT NULL,  -- 抽查方式
    active      boolean NOT NULL DEFAULT true,
    version     integer NOT NULL CHECK (version >= 1),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL,
    PRIMARY KEY (agency, code)
);

-- 音像记录事项清单: for which matters, at which stages, audio/video recording is required.
-- Stages: start 启动, investigation 调查取证, review_decision 审核决定,
-- service_execution 送达执行.
CREATE TABLE av_matter (
    agency      char(18) NOT NULL REFERENCES agency (code),
    matter_code text NOT NULL,
    stages      text[] NOT NULL CHECK (cardinality(stages) >= 1 AND stages <@
                    ARRAY['start', 'investigation', 'review_decision', 'service_execution']),
    active      boolean NOT NULL DEFAULT true,
    version     integer NOT NULL CHECK (version >= 1),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL,
    PRIMARY KEY (agency, matter_code),
    FOREIGN KEY (agency, matter_code) REFERENCES matter (agency, code)
);

-- 重大执法决定法制审核目录清单: a rule matches a proposed decision when every criterion it
-- sets holds (NULL = any); a decision matching any active rule needs legal review.
CREATE TABLE review_rule (
    agency                char(18) NOT NULL REFERENCES agency (code),
    id                    text NOT NULL,
    description           text NOT NULL,
    case_type             text CHECK (case_type IN ('licence', 'penalty', 'coercion', 'inspection', 'levy')),
    domain                text,
    level                 text CHECK (level IN ('province', 'city', 'district', 'county', 'township')),
    amount_threshold      numeric(18, 6) CHECK (amount_threshold >= 0),  -- 万元: fine + confiscation >= it
    hearing               boolean,  -- a hearing (听证) was held
    major_public_interest boolean,  -- 涉及重大公共利益
    social_risk           boolean,  -- 可能造成重大社会影响或引发社会风险
    complex               boolean,  -- 案件情况疑难复杂、涉及多个法律关系
    active                boolean NOT NULL DEFAULT true,
    version               integer NOT NULL CHECK (version >= 1),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    updated_by            text NOT NULL,
    PRIMARY KEY (agency, id)
);

-- 自由裁量基准: the fine band per violation and circumstance (轻微 minor, 一般 general,
-- 严重 serious), in 万元.
CREATE TABLE discretion (
    agency         char(18) NOT NULL REFERENCES agency (code),
    violation_code text NOT NULL,
    circumstance   text NOT NULL CHECK (circumstance IN ('minor', 'general', 'serious')),
    fine_min       numeric(18, 6) NOT NULL CHECK (fine_min >= 0),
    fine_max       numeric(18, 6) NOT NULL,
    basis          text NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    version        integer NOT NULL CHECK (version >= 1),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text NOT NULL,
    PRIMARY KEY (agency, violation_code, circumstance),
    CHECK (fine_max >= fine_min)
);

-- Every version of every registry entry, as submitted (msgpack body), and who changed it.
CREATE TABLE registry_change (
    id        bigserial PRIMARY KEY,
    agency    char(18) NOT NULL,
    list      text NOT NULL CHECK (list IN ('agency', 'officer', 'matter', 'inspection_item',
                                            'av_matter', 'review_rule', 'discretion')),
    key       text NOT NULL,
    version   integer NOT NULL CHECK (version >= 1),
    action    text NOT NULL CHECK (action IN ('put', 'retire')),
    body      bytea NOT NULL,
    by        text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agency, list, key, version)
);

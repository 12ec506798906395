-- Before-publication (事前公开): every registry list of every agency, as the public sees
-- it (嘉政办发〔2019〕56号 四(二): the five lists and what they rest on). A change replaces
-- the entry; every version is kept in registry_history.
CREATE TABLE registry_entry (
    agency  text    NOT NULL,
    list    text    NOT NULL,
    key     text    NOT NULL,
    version int     NOT NULL,
    active  bool    NOT NULL,
    entry   jsonb   NOT NULL,
    PRIMARY KEY (agency, list, key)
);

CREATE TABLE registry_history (
    agency  text    NOT NULL,
    list    text    NOT NULL,
    key     text    NOT NULL,
    version int     NOT NULL,
    action  text    NOT NULL,
    entry   jsonb   NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency, list, key, version)
);

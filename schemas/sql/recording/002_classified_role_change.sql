-- Who may read an agency's classified records (国家秘密/商业秘密/个人隐私) is set by the
-- agency through recording's door (record.classified_roles.put, services/recording/
-- classified.c); classified_role (001) holds the current set, and this table every
-- change: the whole list as set, its version (1, 2, ... per agency: a put names the
-- version it replaces), who set it and under which rid. Append-only, so a widening of
-- access can always be traced to an identity.
CREATE TABLE classified_role_change (
    id        bigserial PRIMARY KEY,
    agency    char(18) NOT NULL,
    version   integer NOT NULL CHECK (version >= 1),
    roles     text[] NOT NULL,
    identity  text NOT NULL,
    rid       text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agency, version)
);
CREATE TRIGGER classified_role_change_append_only BEFORE UPDATE OR DELETE
    ON classified_role_change FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER classified_role_change_no_truncate BEFORE TRUNCATE ON classified_role_change
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();

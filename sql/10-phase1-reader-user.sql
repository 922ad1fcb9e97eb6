-- Phase 1: the group app_ro and the reader path's rotation users (crdb-reader).
-- The pipeline creates the group (a role without LOGIN) and the login users app_ro_01 / app_ro_02 first
-- (evolution_pipeline/roles.py): app_ro_01 with the password from APP_READER_PASSWORD (on a secure
-- cluster; an insecure local cluster refuses passwords), app_ro_02 without one until rotate_credentials.
-- Phase 1 gives every range one voter (node 1) and one non-voting read replica (node 2); the reader path
-- reads with AS OF SYSTEM TIME follower_read_timestamp(), which the read replica can serve. The
-- writer/reader split is one of intent, and this group is what enforces it. SELECT only, and write
-- privileges revoked explicitly so a stray grant cannot survive a re-run (TRUNCATE is never granted: on
-- PostgreSQL only the owner has it, on CockroachDB it needs DROP). Idempotent; valid on CockroachDB and
-- PostgreSQL alike.
GRANT CONNECT ON DATABASE app TO app_ro;
GRANT USAGE ON SCHEMA public TO app_ro;
GRANT SELECT ON TABLE search_terms, login_events TO app_ro;
REVOKE INSERT, UPDATE, DELETE ON TABLE search_terms, login_events FROM app_ro;
-- Again here, for a cluster whose phase 0 ran before the groups existed: no CREATE on the schema for anyone
-- but app_fa (a user who can create tables can write).
REVOKE CREATE ON SCHEMA public FROM public;
-- Tables created later by the pipeline are readable too, never writable; sequences: current values only.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO app_ro;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON SEQUENCES TO app_ro;
-- The reader path's two rotation users inherit the read-only group.
GRANT app_ro TO app_ro_01, app_ro_02;

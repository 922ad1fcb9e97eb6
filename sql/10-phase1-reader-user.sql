-- Phase 1: the read-only user for the legacy reader path (crdb-reader).
-- The pipeline creates the login user app_reader first and sets its password from APP_READER_PASSWORD
-- (on a secure cluster; an insecure local cluster refuses passwords).
-- Phase 1 gives every range one voter (node 1) and one non-voting read replica (node 2); the reader path
-- reads with AS OF SYSTEM TIME follower_read_timestamp(), which the read replica can serve. The
-- writer/reader split is one of intent, and this user is what enforces it. SELECT only, and write
-- privileges revoked explicitly so a stray grant cannot survive a re-run. Idempotent; valid on
-- CockroachDB and PostgreSQL alike.
GRANT CONNECT ON DATABASE app TO app_reader;
GRANT USAGE ON SCHEMA public TO app_reader;
GRANT SELECT ON TABLE search_terms, login_events TO app_reader;
REVOKE INSERT, UPDATE, DELETE ON TABLE search_terms, login_events FROM app_reader;
-- CockroachDB gives every user CREATE on schema public through the `public` role (PostgreSQL did until
-- 15): a user who can create tables can write. No app user creates tables (the pipeline does, as admin).
REVOKE CREATE ON SCHEMA public FROM public;
-- Tables created later by the pipeline are readable too, never writable.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO app_reader;

-- Phase 0: the groups app_fa and app_rw, and the writer path's rotation users. Runs inside the `app`
-- database after 00-bootstrap.sql. The pipeline creates the groups (roles without LOGIN) and the login users
-- app_rw_01 / app_rw_02 first (evolution_pipeline/roles.py): app_rw_01 with the password from
-- APP_WRITER_PASSWORD, app_rw_02 without one until rotate_credentials gives it one. No password appears here.
-- Privileges go to groups only; a login user holds nothing but its membership. Every statement is
-- idempotent and valid on CockroachDB and PostgreSQL alike.
GRANT CONNECT ON DATABASE app TO app_fa, app_rw;
GRANT USAGE ON SCHEMA public TO app_fa, app_rw;
-- Full access: DDL (CREATE on the schema) and every table privilege.
GRANT CREATE ON SCHEMA public TO app_fa;
GRANT ALL ON TABLE login_events, search_terms TO app_fa;
-- Read-write: DML only. Not an owner and no CREATE on the schema, so no schema change.
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE login_events, search_terms TO app_rw;
-- CockroachDB gives every user CREATE on schema public through the `public` role (PostgreSQL did until
-- 15): a user who can create tables can write, and can change the schema. Only app_fa keeps it.
REVOKE CREATE ON SCHEMA public FROM public;
-- Tables and sequences the pipeline (the admin user) creates later get the same privileges. The app uses
-- UUID keys and no sequences today; USAGE/SELECT/UPDATE is what nextval/currval/setval need on both.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO app_fa;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO app_fa;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app_rw;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO app_rw;
-- The writer path's two rotation users inherit the read-write group (INHERIT is the default on both).
GRANT app_rw TO app_rw_01, app_rw_02;

-- Phase 0: what the writer path may do. Runs inside the `app` database after 00-bootstrap.sql.
-- The pipeline creates the login user app_writer first and sets its password from APP_WRITER_PASSWORD
-- (a Kubernetes Secret in the cluster): no password ever appears in this file.
-- Every statement is idempotent and valid on CockroachDB and PostgreSQL alike.
GRANT CONNECT ON DATABASE app TO app_writer;
GRANT USAGE ON SCHEMA public TO app_writer;
GRANT SELECT, INSERT ON TABLE login_events TO app_writer;
GRANT SELECT ON TABLE search_terms TO app_writer;

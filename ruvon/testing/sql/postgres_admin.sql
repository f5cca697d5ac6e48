-- Administrative queries of ruvon.testing.postgres: per-test databases cloned from a template.
-- {name} and {template} are identifiers validated and quoted by the caller (DDL takes no
-- parameters); everything else is a $n parameter.

-- name: database_state
-- NULL: no such database; false: a database that is not (yet) a template; true: a template.
SELECT datistemplate FROM pg_database WHERE datname = $1;

-- name: lock_templates
-- Serializes template builds across test processes (session-level advisory lock).
SELECT pg_advisory_lock($1);

-- name: unlock_templates
SELECT pg_advisory_unlock($1);

-- name: create_database
CREATE DATABASE {name};

-- name: create_database_from_template
-- Copies the migrated template: tens of milliseconds, against seconds for the migrations.
CREATE DATABASE {name} TEMPLATE {template};

-- name: drop_database
DROP DATABASE IF EXISTS {name} WITH (FORCE);

-- name: disconnect_database
-- The template must have no sessions when it is copied (the migration engine may linger).
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid();

-- name: mark_template
-- Ready for copying; nobody may connect to it any more (a session would block CREATE DATABASE).
ALTER DATABASE {name} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false;

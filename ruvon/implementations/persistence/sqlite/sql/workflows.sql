-- Named queries for SQLitePersistenceProvider (loaded by ruvon.implementations.persistence.queries).
-- Timestamps are ISO-8601 UTC text, JSON columns are TEXT, booleans are 0/1.

-- name: enable_wal
-- Write-ahead logging: readers never block the writer. Not used for :memory: databases.
PRAGMA journal_mode = WAL;

-- name: configure_connection
-- In WAL mode NORMAL loses at most the last transactions on power loss, never integrity.
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;

-- name: defer_checkpoints
-- File databases checkpoint in the background (see checkpoint.py); this inline
-- threshold (pages, ~40 MB) is only the safety net should that thread fall behind.
PRAGMA wal_autocheckpoint = 10000;

-- name: checkpoint
-- Copy committed WAL frames into the database without blocking the writer or any reader.
PRAGMA wal_checkpoint(PASSIVE);

-- name: schema_objects
-- The tables and indexes of a database in creation order (replayable DDL); SQLite's internal
-- objects (sqlite_sequence, the autoindexes of UNIQUE/PRIMARY KEY) come with their tables.
SELECT type, name, tbl_name, sql FROM sqlite_master
WHERE type IN ('table', 'index') AND sql IS NOT NULL AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
ORDER BY rowid;

-- name: table_columns
SELECT name FROM pragma_table_info(?) ORDER BY cid;

-- name: foreign_keys
PRAGMA foreign_keys;

-- name: set_foreign_keys
-- {enabled} is 0 or 1. A no-op inside a transaction, so set it before BEGIN.
PRAGMA foreign_keys = {enabled};

-- name: copy_table_rows
-- Rebuilding a table (SQLite's documented way to change one): {columns} are quoted names.
INSERT INTO "{target}" ({columns}) SELECT {columns} FROM "{source}";

-- name: drop_table
DROP TABLE "{table}";

-- name: rename_table
ALTER TABLE "{table}" RENAME TO "{new_name}";

-- name: stamp_revision
-- Alembic's own bookkeeping row: the database is at this revision.
INSERT INTO alembic_version (version_num) VALUES (?);

-- name: record_compatibility
-- The migrations' other bookkeeping row: the oldest code revision this revision runs with
-- (ruvon.db_schema.compatibility).
INSERT OR REPLACE INTO ruvon_schema_compat (revision, min_compatible_revision) VALUES (?, ?);

-- name: begin_immediate
-- Take the write lock up front so a transaction never fails half-way on a lock upgrade.
BEGIN IMMEDIATE;

-- name: insert_workflow
INSERT INTO workflow_executions (
    id, workflow_type, workflow_version, status, current_step, state, definition_snapshot,
    version, parent_execution_id, blocked_on_child_id, idempotency_key, saga_mode,
    completed_steps, run_at, error, runtime, metadata, data_region, priority, owner_id, org_id,
    created_at, updated_at, completed_at, deadline_at
) VALUES (
    :id, :workflow_type, :workflow_version, :status, :current_step, :state, :definition_snapshot,
    :version, :parent_execution_id, :blocked_on_child_id, :idempotency_key, :saga_mode,
    :completed_steps, :run_at, :error, :runtime, :metadata, :data_region, :priority, :owner_id,
    :org_id, :created_at, :updated_at, :completed_at, :deadline_at
);

-- name: update_workflow
-- The fenced save: matches no row unless the stored version is the one the writer read.
-- workflow_type, definition_snapshot and created_at are fixed at insert (a running workflow
-- keeps the definition it started with); the indexed columns are left to
-- update_workflow_indexed (see there).
UPDATE workflow_executions SET
    workflow_version = :workflow_version,
    current_step = :current_step, state = :state,
    version = :version, blocked_on_child_id = :blocked_on_child_id, saga_mode = :saga_mode,
    completed_steps = :completed_steps, error = :error, runtime = :runtime,
    metadata = :metadata, data_region = :data_region, priority = :priority,
    owner_id = :owner_id, org_id = :org_id,
    updated_at = :updated_at, completed_at = :completed_at
WHERE id = :id AND version = :expected_version;

-- name: update_workflow_indexed
-- The indexed columns, written only when one of them differs, in the fenced save's transaction:
-- SQLite rewrites an index entry whenever its column is SET, even to the same value, and most
-- saves change none of them (a step's save keeps the status), so fewer dirty pages, less WAL.
-- A save whose row is known to hold these values already skips it (indexed_columns.py).
UPDATE workflow_executions SET
    status = :status, run_at = :run_at,
    parent_execution_id = :parent_execution_id, idempotency_key = :idempotency_key
WHERE id = :id
  AND (status IS NOT :status OR run_at IS NOT :run_at
       OR parent_execution_id IS NOT :parent_execution_id
       OR idempotency_key IS NOT :idempotency_key);

-- name: workflow_exists
SELECT 1 FROM workflow_executions WHERE id = ?;

-- name: load_workflow
SELECT id, workflow_type, workflow_version, status, current_step, state, definition_snapshot,
       version, parent_execution_id, blocked_on_child_id, idempotency_key, saga_mode,
       completed_steps, run_at, error, runtime, metadata, data_region, priority, owner_id,
       org_id, created_at, updated_at, completed_at, deadline_at
FROM workflow_executions WHERE id = ?;

-- name: find_by_idempotency_key
SELECT id, workflow_type, workflow_version, status, current_step, state, definition_snapshot,
       version, parent_execution_id, blocked_on_child_id, idempotency_key, saga_mode,
       completed_steps, run_at, error, runtime, metadata, data_region, priority, owner_id,
       org_id, created_at, updated_at, completed_at, deadline_at
FROM workflow_executions WHERE idempotency_key = ?;

-- name: list_workflows
-- A NULL filter matches everything; newest first, the id breaking created_at ties (so that
-- (created_at, id) is a keyset: a page continues after the last row of the previous one).
-- Prefixes compare with substr, not LIKE: SQLite's LIKE ignores ASCII case, and substr has no
-- wildcards to escape (a '%' or '_' in the prefix is just that character).
SELECT id, workflow_type, workflow_version, status, current_step, state, definition_snapshot,
       version, parent_execution_id, blocked_on_child_id, idempotency_key, saga_mode,
       completed_steps, run_at, error, runtime, metadata, data_region, priority, owner_id,
       org_id, created_at, updated_at, completed_at, deadline_at
FROM workflow_executions
WHERE (:status IS NULL OR status = :status)
  AND (:workflow_type IS NULL OR workflow_type = :workflow_type)
  AND (:parent_execution_id IS NULL OR parent_execution_id = :parent_execution_id)
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND (:after_created_at IS NULL OR (created_at, id) < (:after_created_at, :after_id))
  AND (:workflow_version IS NULL OR workflow_version = :workflow_version)
  AND (:id_prefix IS NULL OR substr(id, 1, length(:id_prefix)) = :id_prefix)
  AND (:key_prefix IS NULL OR substr(idempotency_key, 1, length(:key_prefix)) = :key_prefix)
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: list_due_timers
SELECT id FROM workflow_executions
WHERE status IN ('WAITING_TIMER', 'WAITING_HUMAN') AND run_at <= :now
ORDER BY priority DESC, run_at, rowid
LIMIT :limit;

-- name: list_past_deadline
-- Unfinished workflows whose deadline passed (ix_workflow_executions_status_deadline_at).
SELECT id FROM workflow_executions
WHERE status IN ('ACTIVE', 'PENDING_ASYNC', 'PENDING_PARALLEL', 'PENDING_SUB_WORKFLOW',
                 'WAITING_HUMAN', 'WAITING_TIMER')
  AND deadline_at <= :now
ORDER BY deadline_at, rowid
LIMIT :limit;

-- name: insert_audit
INSERT INTO workflow_audit_log (
    workflow_id, event_type, step_name, old_status, new_status, details, recorded_at
) VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: get_audit_log
SELECT workflow_id, event_type, step_name, old_status, new_status, details, recorded_at
FROM workflow_audit_log WHERE workflow_id = ? ORDER BY id;

-- name: insert_execution_log
INSERT INTO workflow_execution_logs (workflow_id, level, message, step_name, details, logged_at)
VALUES (?, ?, ?, ?, ?, ?);

-- name: get_execution_logs
SELECT workflow_id, level, message, step_name, details, logged_at
FROM workflow_execution_logs WHERE workflow_id = ? ORDER BY id;

-- name: insert_compensation
INSERT INTO compensation_log (
    workflow_id, step_name, function, succeeded, error, state_before, executed_at
) VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: get_compensation_log
SELECT workflow_id, step_name, function, succeeded, error, state_before, executed_at
FROM compensation_log WHERE workflow_id = ? ORDER BY id;

-- name: upsert_schedule
INSERT INTO scheduled_workflows (
    name, workflow_type, cron, initial_data, enabled, source_workflow_id, next_run_at,
    last_run_at, created_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    workflow_type = excluded.workflow_type, cron = excluded.cron,
    initial_data = excluded.initial_data, enabled = excluded.enabled,
    source_workflow_id = excluded.source_workflow_id, next_run_at = excluded.next_run_at,
    last_run_at = excluded.last_run_at, created_at = excluded.created_at;

-- name: list_schedules
SELECT name, workflow_type, cron, initial_data, enabled, source_workflow_id, next_run_at,
       last_run_at, created_at
FROM scheduled_workflows ORDER BY name;

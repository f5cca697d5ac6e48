-- Named queries for PostgresPersistenceProvider (loaded by ruvon.implementations.persistence.queries).
-- The tables come from ruvon/db_schema/database.py through the Alembic migrations; JSON columns
-- are jsonb, timestamps timestamptz. workflow_executions columns are selected and bound in the
-- order of the WorkflowRecord fields ($1..$25), so rows map to records positionally.
-- Audit rows are added by writes.AuditedWrite: the write below goes into a CTE
-- (RETURNING id) and the audit INSERT selects from it, so both are one statement.

-- name: create_workflow
-- Insert unless the idempotency key is taken. The command status counts the workflows (or,
-- with audit rows, the audit rows) inserted; 0: the key exists and the caller reads that
-- workflow. Audit rows reference the new row: foreign keys are checked at statement end.
-- Parameters $1..$21 are save_workflow's, in the same order; $22..$25 are fixed at creation.
INSERT INTO workflow_executions (
    id, status, state, current_step, workflow_version, version, parent_execution_id,
    blocked_on_child_id, idempotency_key, saga_mode, completed_steps, run_at, error, runtime,
    metadata, data_region, priority, owner_id, org_id, updated_at, completed_at,
    workflow_type, definition_snapshot, created_at, deadline_at
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
    $20, $21, $22, $23, $24, $25
)
ON CONFLICT (idempotency_key) DO NOTHING

-- name: save_workflow
-- The fenced save: the UPDATE matches no row unless the stored version is the one the writer
-- read ($6); audit rows are inserted only if it matched. One statement, one round trip, one
-- implicit transaction; the command status counts the rows written (0: no match).
-- workflow_type, definition_snapshot, created_at and deadline_at are fixed by create_workflow: a running
-- workflow keeps the definition it started with, so a save never re-sends (or re-parses) it.
UPDATE workflow_executions SET
    status = $2, state = $3, current_step = $4, workflow_version = $5, version = $6 + 1,
    parent_execution_id = $7, blocked_on_child_id = $8, idempotency_key = $9,
    saga_mode = $10, completed_steps = $11, run_at = $12, error = $13, runtime = $14,
    metadata = $15, data_region = $16, priority = $17, owner_id = $18, org_id = $19,
    updated_at = $20, completed_at = $21
WHERE id = $1 AND version = $6

-- name: workflow_exists
-- After a save matched no row: a conflict if the workflow exists, not-found otherwise.
SELECT EXISTS (SELECT 1 FROM workflow_executions WHERE id = $1);

-- name: load_workflow
SELECT id, workflow_type, status, state, definition_snapshot, current_step, workflow_version,
       version, parent_execution_id, blocked_on_child_id, idempotency_key, saga_mode,
       completed_steps, run_at, error, runtime, metadata, data_region, priority, owner_id,
       org_id, created_at, updated_at, completed_at, deadline_at
FROM workflow_executions WHERE id = $1;

-- name: find_by_idempotency_key
SELECT id, workflow_type, status, state, definition_snapshot, current_step, workflow_version,
       version, parent_execution_id, blocked_on_child_id, idempotency_key, saga_mode,
       completed_steps, run_at, error, runtime, metadata, data_region, priority, owner_id,
       org_id, created_at, updated_at, completed_at, deadline_at
FROM workflow_executions WHERE idempotency_key = $1;

-- name: list_workflows
-- Newest first. The table has no insertion sequence, so created_at ties are broken by id
-- (descending) to keep the order stable; (created_at, id) is then a keyset cursor. {where} is
-- the filters that were given, and only those (postgres/listing.py): each combination is a
-- statement of its own whose plan uses the index that serves it, where a catch-all
-- "$n IS NULL OR ..." would be planned once for every combination. $1 is the limit.
SELECT id, workflow_type, status, state, definition_snapshot, current_step, workflow_version,
       version, parent_execution_id, blocked_on_child_id, idempotency_key, saga_mode,
       completed_steps, run_at, error, runtime, metadata, data_region, priority, owner_id,
       org_id, created_at, updated_at, completed_at, deadline_at
FROM workflow_executions
{where}
ORDER BY created_at DESC, id DESC
LIMIT $1;

-- name: list_due_timers
SELECT id FROM workflow_executions
WHERE status IN ('WAITING_TIMER', 'WAITING_HUMAN') AND run_at <= $1
ORDER BY priority DESC, run_at, id
LIMIT $2;

-- name: list_past_deadline
-- Unfinished workflows whose deadline passed (the ix_workflow_executions_status_deadline_at
-- index, one range per status).
SELECT id FROM workflow_executions
WHERE status IN ('ACTIVE', 'PENDING_ASYNC', 'PENDING_PARALLEL', 'PENDING_SUB_WORKFLOW',
                 'WAITING_HUMAN', 'WAITING_TIMER')
  AND deadline_at <= $1
ORDER BY deadline_at, id
LIMIT $2;

-- name: get_audit_log
SELECT workflow_id, event_type, step_name, old_status, new_status, details, recorded_at
FROM workflow_audit_log WHERE workflow_id = $1 ORDER BY id;

-- name: insert_execution_log
INSERT INTO workflow_execution_logs (workflow_id, level, message, step_name, details, logged_at)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: get_execution_logs
SELECT workflow_id, level, message, step_name, details, logged_at
FROM workflow_execution_logs WHERE workflow_id = $1 ORDER BY id;

-- name: insert_compensation
INSERT INTO compensation_log (
    workflow_id, step_name, function, succeeded, error, state_before, executed_at
) VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: get_compensation_log
SELECT workflow_id, step_name, function, succeeded, error, state_before, executed_at
FROM compensation_log WHERE workflow_id = $1 ORDER BY id;

-- name: upsert_schedule
INSERT INTO scheduled_workflows (
    name, workflow_type, cron, initial_data, enabled, source_workflow_id, next_run_at,
    last_run_at, created_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (name) DO UPDATE SET
    workflow_type = excluded.workflow_type, cron = excluded.cron,
    initial_data = excluded.initial_data, enabled = excluded.enabled,
    source_workflow_id = excluded.source_workflow_id, next_run_at = excluded.next_run_at,
    last_run_at = excluded.last_run_at, created_at = excluded.created_at;

-- name: list_schedules
SELECT name, workflow_type, cron, initial_data, enabled, source_workflow_id, next_run_at,
       last_run_at, created_at
FROM scheduled_workflows ORDER BY name;

-- name: list_changed_workflows
-- Keyset on (updated_at, id): ix_workflow_executions_updated_at (migration 0005).
SELECT id, workflow_type, status, state, definition_snapshot, current_step, workflow_version,
       version, parent_execution_id, blocked_on_child_id, idempotency_key, saga_mode,
       completed_steps, run_at, error, runtime, metadata, data_region, priority, owner_id,
       org_id, created_at, updated_at, completed_at
FROM workflow_executions
WHERE (updated_at, id) > ($1::timestamptz, $2::text)
ORDER BY updated_at, id
LIMIT $3;

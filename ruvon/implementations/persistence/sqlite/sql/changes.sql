-- name: list_changed_workflows
-- Keyset on (updated_at, id): ix_workflow_executions_updated_at (migration 0005). The times
-- are UTC ISO text of one width, so text order is time order.
SELECT id, workflow_type, workflow_version, status, current_step, state, definition_snapshot,
       version, parent_execution_id, blocked_on_child_id, idempotency_key, saga_mode,
       completed_steps, run_at, error, runtime, metadata, data_region, priority, owner_id,
       org_id, created_at, updated_at, completed_at
FROM workflow_executions
WHERE (updated_at, id) > (:after_updated_at, :after_id)
ORDER BY updated_at, id
LIMIT :limit;

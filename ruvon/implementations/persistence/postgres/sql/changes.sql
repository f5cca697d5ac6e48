-- name: list_changed_workflows
-- Keyset on (updated_at, id): ix_workflow_executions_updated_at (migration 0005). A listing's
-- columns only: the state never leaves the server, and of the snapshot only the step's name.
SELECT id, workflow_type, workflow_version, status,
       CASE WHEN current_step >= 0
            THEN definition_snapshot -> 'steps' -> current_step ->> 'name' END,
       parent_execution_id, error, version, created_at, updated_at, completed_at
FROM workflow_executions
WHERE (updated_at, id) > ($1::timestamptz, $2::text)
ORDER BY updated_at, id
LIMIT $3;

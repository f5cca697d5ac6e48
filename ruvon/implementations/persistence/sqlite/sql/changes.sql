-- name: list_changed_workflows
-- Keyset on (updated_at, id): ix_workflow_executions_updated_at (migration 0005); the times
-- are UTC ISO text of one width, so text order is time order. A listing's columns only: the
-- state is not read, and of the snapshot only the step's name.
SELECT id, workflow_type, workflow_version, status,
       CASE WHEN current_step >= 0
            THEN json_extract(definition_snapshot, '$.steps[' || current_step || '].name')
       END AS current_step_name,
       parent_execution_id, error, version, created_at, updated_at, completed_at
FROM workflow_executions
WHERE (updated_at, id) > (:after_updated_at, :after_id)
ORDER BY updated_at, id
LIMIT :limit;

-- Named queries of the cluster's workflow counts (ruvon.implementations.observability.workflow_counts).

-- name: workflows_started
-- Workflows ever stored, per type: every start (client, child, cron) inserts exactly one row,
-- and rows are never deleted, so the counts only grow. An index-only scan of
-- ix_workflow_executions_type_status.
SELECT workflow_type, count(*)
FROM workflow_executions
GROUP BY workflow_type
ORDER BY workflow_type;

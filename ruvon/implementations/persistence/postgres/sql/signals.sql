-- name: insert_signal
-- A duplicate (same workflow, same event id) inserts nothing and returns no row.
INSERT INTO workflow_signals (workflow_id, name, event_id, data, sent_by, sent_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (workflow_id, event_id) DO NOTHING
RETURNING id;

-- name: list_signals
SELECT workflow_id, name, event_id, data, sent_by, sent_at
FROM workflow_signals WHERE workflow_id = $1 AND ($2::text IS NULL OR name = $2::text)
ORDER BY id;

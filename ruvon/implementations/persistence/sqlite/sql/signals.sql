-- name: insert_signal
-- A duplicate (same workflow, same event id) inserts nothing: rowcount 0.
INSERT INTO workflow_signals (workflow_id, name, event_id, data, sent_by, sent_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (workflow_id, event_id) DO NOTHING;

-- name: list_signals
SELECT workflow_id, name, event_id, data, sent_by, sent_at
FROM workflow_signals WHERE workflow_id = :workflow_id AND (:name IS NULL OR name = :name)
ORDER BY id;

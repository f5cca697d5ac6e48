-- Named queries of the SQLite provider's flow control (sqlite/flow_control.py): concurrency
-- slots decided in Python under BEGIN IMMEDIATE (slot_book.py), and rate-limit cells.

-- name: slot_rows
-- One key's holders and waiters, with the status of each one's workflow (NULL: gone).
SELECT s.holder, s.workflow_id, s.step_name, s.state, s.slot_limit, s.priority, s.since,
       s.seq, s.owner, s.lease_expires_at, s.run_id, w.status
FROM concurrency_slots s LEFT JOIN workflow_executions w ON w.id = s.workflow_id
WHERE s.key = ?;

-- name: slot_keys
SELECT DISTINCT key FROM concurrency_slots ORDER BY key;

-- name: workflow_keys
SELECT DISTINCT key FROM concurrency_slots WHERE workflow_id = ? ORDER BY key;

-- name: delete_slot
DELETE FROM concurrency_slots WHERE key = ? AND holder = ?;

-- name: upsert_slot
INSERT INTO concurrency_slots (
    key, holder, workflow_id, step_name, state, slot_limit, priority, since, seq, owner,
    lease_expires_at, run_id
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key, holder) DO UPDATE SET
    state = excluded.state, slot_limit = excluded.slot_limit, priority = excluded.priority,
    since = excluded.since, seq = excluded.seq, owner = excluded.owner,
    lease_expires_at = excluded.lease_expires_at, run_id = excluded.run_id;

-- name: rate_cell
SELECT tat FROM rate_limits WHERE key = ?;

-- name: store_rate_cell
INSERT INTO rate_limits (key, tat) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET tat = excluded.tat;

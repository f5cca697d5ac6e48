-- Named queries of flow control on PostgreSQL (postgres/flow_control.py). A key's rows are
-- read and written under pg_advisory_xact_lock(key): one transaction at a time decides a key.

-- name: lock_key
SELECT pg_advisory_xact_lock(hashtextextended($1, 7466));

-- name: slot_rows
-- One key's holders and waiters; `live` is false when the store knows one is dead: its
-- workflow ended (or is gone), or, holding a step's slot (step_name set) for a cluster run,
-- that run's lease lapsed or it closed. A workflow's own slot lives as long as the workflow. The database's clock (now, as UNIX seconds) comes with each row.
SELECT s.holder, s.workflow_id, s.step_name, s.state, s.slot_limit, s.priority,
       extract(epoch FROM s.since)::float8, s.seq, s.owner,
       extract(epoch FROM s.lease_expires_at)::float8, s.run_id,
       w.status IS NOT NULL
       AND w.status NOT IN ('COMPLETED', 'FAILED', 'FAILED_ROLLED_BACK', 'FAILED_CHILD_WORKFLOW',
                            'FAILED_WORKER_CRASH', 'CANCELLED')
       AND (s.run_id IS NULL OR s.state = 'WAITING' OR s.step_name IS NULL OR EXISTS (
               SELECT 1 FROM step_runs r
               WHERE r.id = s.run_id AND r.status = 'RUNNING' AND r.lease_expires_at > now())),
       extract(epoch FROM now())::float8
FROM concurrency_slots s LEFT JOIN workflow_executions w ON w.id = s.workflow_id
WHERE s.key = $1;

-- name: now_seconds
SELECT extract(epoch FROM now())::float8;

-- name: slot_keys
SELECT DISTINCT key FROM concurrency_slots ORDER BY key;

-- name: workflow_keys
SELECT DISTINCT key FROM concurrency_slots WHERE workflow_id = $1 ORDER BY key;

-- name: waiting_keys
SELECT DISTINCT key FROM concurrency_slots WHERE state = 'WAITING' ORDER BY key LIMIT $1;

-- name: delete_slots
DELETE FROM concurrency_slots WHERE key = $1 AND holder = ANY($2::text[]);

-- name: upsert_slot
INSERT INTO concurrency_slots (
    key, holder, workflow_id, step_name, state, slot_limit, priority, since, seq, owner,
    lease_expires_at, run_id
) VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8), $9, $10, to_timestamp($11), $12)
ON CONFLICT (key, holder) DO UPDATE SET
    state = excluded.state, slot_limit = excluded.slot_limit, priority = excluded.priority,
    since = excluded.since, seq = excluded.seq, owner = excluded.owner,
    lease_expires_at = excluded.lease_expires_at, run_id = excluded.run_id;

-- name: reserve_rate
-- One reservation of the generic cell rate algorithm (ruvon.providers.flow_control.rate_cell):
-- tat' = max(tat, now) + T; the wait is tat' - T - (burst - 1) T - now, at least 0.
-- $2 = T (1 / per_second), $3 = the tolerance (burst - 1) * T.
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
INSERT INTO rate_limits AS cell (key, tat)
SELECT $1, clock.now + $2 FROM clock
ON CONFLICT (key) DO UPDATE SET
    tat = greatest(cell.tat, (SELECT now FROM clock)) + $2
RETURNING greatest(cell.tat - $2 - $3 - (SELECT now FROM clock), 0)::float8;

-- name: read_rate_cell
-- The cell (NULL for a new key) and the database's clock, under the key's advisory lock.
SELECT (SELECT tat FROM rate_limits WHERE key = $1),
       extract(epoch FROM clock_timestamp())::float8;

-- name: store_rate_cell
INSERT INTO rate_limits (key, tat) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET tat = excluded.tat;

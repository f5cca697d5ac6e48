-- Named queries of loadtests/server_dataset.py: the server benchmark's stored workflows.

-- name: seed_workflows
-- $1 rows: one INSERT ... SELECT over generate_series, all on the server (no rows travel).
-- Each row copies the definition snapshot, version and saga mode of one real workflow of its
-- type ($2: one id per type, run by the cluster beforehand), the type picked with the weights
-- whose lower bounds are $3 (width_bucket: bucket n of the thresholds), the status likewise
-- from $4 with the bounds $5. Finished workflows are spread over the $6 seconds before $7;
-- unfinished ones over the last two days only (a week-old workflow is rarely still running).
-- 60 % carry an idempotency key order-<7 digits>; failures carry an error. The state is a
-- small order (~150 bytes). random() follows the session's setseed().
WITH template AS (
    SELECT t.n, w.workflow_type, w.workflow_version, w.definition_snapshot, w.saga_mode,
           json_array_length(w.definition_snapshot -> 'steps') AS steps
    FROM unnest($2::text[]) WITH ORDINALITY AS t(id, n)
    JOIN workflow_executions AS w ON w.id = t.id
),
draw AS (
    SELECT g,
           width_bucket(random(), $3::float8[]) AS type_n,
           ($4::text[])[width_bucket(random(), $5::float8[])] AS status,
           random() AS age, random() AS took, random() AS keyed
    FROM generate_series(1, $1::int) AS g
),
shaped AS (
    SELECT d.*, t.workflow_type, t.workflow_version, t.definition_snapshot, t.saga_mode,
           t.steps,
           d.status IN ('COMPLETED', 'FAILED', 'FAILED_ROLLED_BACK', 'CANCELLED') AS finished,
           CASE WHEN d.status = 'COMPLETED' THEN t.steps - 1
                ELSE floor(d.took * t.steps)::int END AS at_step
    FROM draw AS d JOIN template AS t ON t.n = d.type_n
),
timed AS (
    SELECT s.*,
           $7::timestamptz
             - make_interval(secs => s.age * CASE WHEN s.finished THEN $6::float8 ELSE 172800 END)
             AS created
    FROM shaped AS s
)
INSERT INTO workflow_executions (
    id, workflow_type, workflow_version, status, current_step, state, definition_snapshot,
    version, idempotency_key, saga_mode, completed_steps, error, runtime, metadata, priority,
    created_at, updated_at, completed_at
)
SELECT gen_random_uuid()::text, workflow_type, workflow_version, status, at_step,
       json_build_object(
           'order_id', g, 'customer', 'c-' || (g % 997), 'amount', round((took * 500)::numeric, 2),
           'items', json_build_array('sku-' || (g % 89), 'sku-' || (g % 113)), 'counter', at_step
       ),
       definition_snapshot,
       2 + 2 * at_step,
       CASE WHEN keyed < 0.6 THEN 'order-' || lpad(g::text, 7, '0') END,
       saga_mode,
       (SELECT coalesce(jsonb_agg(step ->> 'name'), '[]'::jsonb)
        FROM json_array_elements(definition_snapshot -> 'steps') WITH ORDINALITY AS e(step, i)
        WHERE i <= at_step + (status = 'COMPLETED')::int),
       CASE WHEN status LIKE 'FAILED%'
            THEN 'StepFunctionError: payment provider refused order ' || g END,
       '{}'::jsonb, '{}'::jsonb, 0,
       created,
       created + make_interval(secs => took * 30),
       CASE WHEN finished THEN created + make_interval(secs => took * 30) END
FROM timed;

-- name: set_seed
SELECT setseed($1::float8);

-- name: vacuum_analyze
-- What autovacuum would do after a bulk load, done now so every run sees the same statistics.
VACUUM (ANALYZE) workflow_executions;

-- name: position_at
-- The (created_at, id) of the row ``$1`` places down the newest-first listing.
SELECT created_at, id FROM workflow_executions
ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1;

-- name: count_rows
SELECT count(*) FROM workflow_executions;

-- name: count_status
SELECT count(*) FROM workflow_executions WHERE status = $1;

-- name: count_type
SELECT count(*) FROM workflow_executions WHERE workflow_type = $1;

-- name: count_id_prefix
SELECT count(*) FROM workflow_executions WHERE starts_with(id, $1);

-- name: count_key_prefix
SELECT count(*) FROM workflow_executions WHERE starts_with(idempotency_key, $1);

-- name: count_window
SELECT count(*) FROM workflow_executions WHERE created_at >= $1 AND created_at < $2;

-- name: workflow_status
SELECT status FROM workflow_executions WHERE id = $1;

-- name: step_run_counts
-- What the cluster wrote for one workflow: its step runs (branches included), branch results.
SELECT (SELECT count(*) FROM step_runs WHERE workflow_id = $1),
       (SELECT count(*) FROM parallel_branch_results WHERE workflow_id = $1),
       (SELECT count(*) FROM workflow_audit_log WHERE workflow_id = $1);

-- Named queries of the queue metrics (ruvon.implementations.observability.queue_metrics).

-- name: queue_stats
-- Per queue: due QUEUED runs waiting for a worker, QUEUED runs not due yet (a retry's backoff),
-- and the age in seconds of the oldest due one (0 when none). A run without run_at is due since
-- it was created. Only QUEUED rows are read (the index on (status, run_at)).
SELECT queue,
       count(*) FILTER (WHERE coalesce(run_at, created_at) <= now()),
       count(*) FILTER (WHERE coalesce(run_at, created_at) > now()),
       coalesce(extract(epoch FROM now() - min(coalesce(run_at, created_at))
                        FILTER (WHERE coalesce(run_at, created_at) <= now())), 0)::float8
FROM step_runs
WHERE status = 'QUEUED'
GROUP BY queue
ORDER BY queue;

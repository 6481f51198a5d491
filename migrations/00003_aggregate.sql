-- Daily aggregation: the rollup function, the record of which days have
-- been aggregated (retention drops raw data only behind it), and the job
-- lock that keeps two scheduled runs from working at once.
--
-- Definitions of the rollup (shared with usage.RollupEvents, the Go
-- reference the tests compare against):
--   calls            sum(quantity)
--   errors_4xx/5xx   sum(quantity) of the rows with a 4xx / 5xx status: an
--                    event of quantity n that failed is n failed calls, so
--                    errors never exceed calls
--   request_bytes, response_bytes, latency_sum_ms
--                    plain sums over the rows (an event carries its bytes and
--                    latency as measured, whatever its quantity)
--   latency_p50_ms, latency_p95_ms
--                    percentile_disc over the rows' latency_ms (unweighted):
--                    the smallest observed latency whose cumulative share of
--                    the rows is >= p, i.e. sorted[ceil(p*n) - 1]; always an
--                    observed integer value
--   latency_max_ms   max(latency_ms)
--   events           count(*) of raw rows
-- A day is the UTC calendar day of occurred_at.

-- +goose Up

-- One row per day that aggregate_daily_usage has recomputed, and when. A
-- day whose raw rows changed afterwards is in eco_usage_dirty_days again; a
-- day with raw rows and no row here has never been aggregated. Retention
-- reads both.
CREATE TABLE eco_usage_aggregated_days (
    day                      date PRIMARY KEY,
    aggregated_at            timestamptz NOT NULL
);

-- A lock row per scheduled job, held for a lease. Advisory locks are not
-- used: they are session state and pin connections behind RDS Proxy. A
-- holder that dies leaves the row behind until locked_until passes.
CREATE TABLE eco_job_locks (
    job                      text PRIMARY KEY,
    holder                   text NOT NULL,
    acquired_at              timestamptz NOT NULL,
    locked_until             timestamptz NOT NULL
);

-- aggregate_daily_usage makes the rollup rows of one UTC day exactly the
-- aggregate of that day's raw events and returns the number of rows it
-- inserted or changed (unchanged rows are not rewritten, and keep their
-- aggregated_at). It is idempotent: running it twice leaves the same rollup.
--
-- With p_parts > 1 it does only the users whose id's last byte modulo
-- p_parts is p_part, so that the parts of one day can run in parallel
-- transactions (the job does this when few days are dirty); the parts
-- together are the whole day.
--
-- Two overlapping recomputes of the same slice cannot double-count: rows
-- are keyed by the rollup's unique key and replaced, never added to. A day whose raw
-- partition no longer exists (dropped by retention) is refused, so that a
-- recompute can never wipe a rollup whose source is gone.
-- +goose StatementBegin
CREATE FUNCTION aggregate_daily_usage(p_day date, p_part integer DEFAULT 0, p_parts integer DEFAULT 1)
RETURNS bigint
LANGUAGE plpgsql
SET work_mem = '64MB'
AS $$
DECLARE
    lo      timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
    hi      timestamptz := (p_day + 1)::timestamp AT TIME ZONE 'UTC';
    written bigint;
BEGIN
    IF p_parts < 1 OR p_part < 0 OR p_part >= p_parts THEN
        RAISE EXCEPTION 'aggregate_daily_usage: part % of % is out of range', p_part, p_parts
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF to_regclass('eco_api_usage_p' || to_char(p_day, 'YYYYMM')) IS NULL THEN
        RAISE EXCEPTION 'raw usage for % is not kept (no partition)', p_day
            USING ERRCODE = 'no_data_found';
    END IF;

    -- The day's groups, computed once; rows whose values did not change are
    -- left alone (a 1 % late batch changes a fraction of a day's groups),
    -- changed and new groups are written, groups without raw rows any more
    -- are deleted. The statement's parts touch disjoint rows.
    WITH g AS MATERIALIZED (
        SELECT u.user_id, u.endpoint, u.api_key_id,
               sum(u.quantity)::bigint                                         AS calls,
               coalesce(sum(u.quantity) FILTER (WHERE u.status_code BETWEEN 400 AND 499), 0)::bigint AS e4,
               coalesce(sum(u.quantity) FILTER (WHERE u.status_code BETWEEN 500 AND 599), 0)::bigint AS e5,
               sum(u.request_bytes)::bigint                                    AS rq,
               sum(u.response_bytes)::bigint                                   AS rs,
               sum(u.latency_ms)::bigint                                       AS lat,
               percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY u.latency_ms) AS p,
               max(u.latency_ms)                                               AS mx,
               count(*)                                                        AS n
        FROM eco_api_usage u
        WHERE u.occurred_at >= lo AND u.occurred_at < hi
          AND (p_parts = 1 OR get_byte(uuid_send(u.user_id), 15) % p_parts = p_part)
        GROUP BY u.user_id, u.endpoint, u.api_key_id
    ), gone AS (
        DELETE FROM eco_usage_daily d
        WHERE d.day = p_day
          AND (p_parts = 1 OR get_byte(uuid_send(d.user_id), 15) % p_parts = p_part)
          AND NOT EXISTS (SELECT 1 FROM g WHERE g.user_id = d.user_id AND g.endpoint = d.endpoint
                          AND g.api_key_id IS NOT DISTINCT FROM d.api_key_id)
    )
    INSERT INTO eco_usage_daily AS d (day, user_id, endpoint, api_key_id, calls, errors_4xx, errors_5xx,
        request_bytes, response_bytes, latency_sum_ms, latency_p50_ms, latency_p95_ms, latency_max_ms,
        events, aggregated_at)
    SELECT p_day, g.user_id, g.endpoint, g.api_key_id, g.calls, g.e4, g.e5, g.rq, g.rs, g.lat,
           g.p[1], g.p[2], g.mx, g.n, now()
    FROM g
    ON CONFLICT (day, user_id, endpoint, api_key_id) DO UPDATE SET
        calls = excluded.calls, errors_4xx = excluded.errors_4xx, errors_5xx = excluded.errors_5xx,
        request_bytes = excluded.request_bytes, response_bytes = excluded.response_bytes,
        latency_sum_ms = excluded.latency_sum_ms, latency_p50_ms = excluded.latency_p50_ms,
        latency_p95_ms = excluded.latency_p95_ms, latency_max_ms = excluded.latency_max_ms,
        events = excluded.events, aggregated_at = excluded.aggregated_at
    WHERE (d.calls, d.errors_4xx, d.errors_5xx, d.request_bytes, d.response_bytes, d.latency_sum_ms,
           d.latency_p50_ms, d.latency_p95_ms, d.latency_max_ms, d.events)
       IS DISTINCT FROM
          (excluded.calls, excluded.errors_4xx, excluded.errors_5xx, excluded.request_bytes, excluded.response_bytes,
           excluded.latency_sum_ms, excluded.latency_p50_ms, excluded.latency_p95_ms, excluded.latency_max_ms,
           excluded.events);
    GET DIAGNOSTICS written = ROW_COUNT;

    INSERT INTO eco_usage_aggregated_days (day, aggregated_at)
    VALUES (p_day, now())
    ON CONFLICT (day) DO UPDATE SET aggregated_at = excluded.aggregated_at;
    RETURN written;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION aggregate_daily_usage(date, integer, integer);
DROP TABLE eco_job_locks;
DROP TABLE eco_usage_aggregated_days;

-- The daily rollup keeps at most p_max_endpoints endpoints of one user and
-- day by name; the calls of the others are kept under the one endpoint
-- '(other)'. Endpoints come from callers (POST /v1/events takes any text of
-- up to 256 bytes), so without a cap one caller could grow eco_usage_daily,
-- its summaries and every per-endpoint report without bound. The record
-- path stays one statement: the cap is applied here, where a day's rows are
-- made.
--
-- The definition, shared with usage.RollupEvents (the Go reference the
-- tests compare against): a user's day with more than p_max_endpoints
-- distinct endpoints keeps its p_max_endpoints most called ones (calls
-- summed over API keys, most first, ties in byte order, an endpoint
-- literally named '(other)' last); the raw rows of the others are rolled up
-- as endpoint '(other)', one row per API key, with the definitions of 00009
-- (sums, saturating sums of bytes and latency, percentile_disc, max,
-- count). Totals per user and day are unchanged, and so are
-- eco_usage_user_daily and the monthly arrays, which the triggers of
-- 00006/00007 keep from these rows.
--
-- The function replaces 00009's, whose signature it extends: p_part,
-- p_parts and the cap keep defaults (0, 1 and usage.DefaultMaxEndpointsPerDay),
-- so aggregate_daily_usage(day) and aggregate_daily_usage(day, part, parts)
-- still work, capped.

-- +goose Up
DROP FUNCTION aggregate_daily_usage(date, integer, integer);

-- aggregate_daily_usage makes the rollup rows of one UTC day (the users of
-- part p_part of p_parts, as in 00003) exactly the aggregate of that day's
-- raw events under the endpoint cap, and returns the rows it inserted or
-- changed. It keeps every guarantee of 00009's: idempotent (rows are keyed
-- and replaced, unchanged rows are not rewritten), rows without raw events
-- any more (or folded now) are deleted, a day whose raw partition is gone
-- is refused, sums of bytes and latency saturate at the bigint maximum
-- (least over NOT NULL columns), calls and errors stay exact.
--
-- The cap costs a normal day two small aggregates over the day's groups;
-- the raw rows are read a second time only when some user is over the cap
-- (the '(other)' rows, percentiles included, come from their raw rows), and
-- then once for all of them.
-- +goose StatementBegin
CREATE FUNCTION aggregate_daily_usage(p_day date, p_part integer DEFAULT 0, p_parts integer DEFAULT 1,
    p_max_endpoints integer DEFAULT 1000)
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
    IF p_max_endpoints IS NULL OR p_max_endpoints < 1 THEN
        RAISE EXCEPTION 'aggregate_daily_usage: at most % endpoints per user and day is not a cap', p_max_endpoints
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF to_regclass('eco_api_usage_p' || to_char(p_day, 'YYYYMM')) IS NULL THEN
        RAISE EXCEPTION 'raw usage for % is not kept (no partition)', p_day
            USING ERRCODE = 'no_data_found';
    END IF;

    WITH g AS MATERIALIZED (
        -- The day's groups by endpoint, as in 00009.
        SELECT u.user_id, u.endpoint, u.api_key_id,
               sum(u.quantity)::bigint                                         AS calls,
               coalesce(sum(u.quantity) FILTER (WHERE u.status_code BETWEEN 400 AND 499), 0)::bigint AS e4,
               coalesce(sum(u.quantity) FILTER (WHERE u.status_code BETWEEN 500 AND 599), 0)::bigint AS e5,
               least(sum(u.request_bytes), 9223372036854775807)::bigint        AS rq,
               least(sum(u.response_bytes), 9223372036854775807)::bigint       AS rs,
               least(sum(u.latency_ms::bigint), 9223372036854775807)::bigint   AS lat,
               percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY u.latency_ms) AS p,
               max(u.latency_ms)                                               AS mx,
               count(*)                                                        AS n
        FROM eco_api_usage u
        WHERE u.occurred_at >= lo AND u.occurred_at < hi
          AND (p_parts = 1 OR get_byte(uuid_send(u.user_id), 15) % p_parts = p_part)
        GROUP BY u.user_id, u.endpoint, u.api_key_id
    ), ue AS (
        -- Calls per user and endpoint, over the API keys.
        SELECT user_id, endpoint, sum(calls) AS calls FROM g GROUP BY user_id, endpoint
    ), over_cap AS MATERIALIZED (
        SELECT user_id FROM ue GROUP BY user_id HAVING count(*) > p_max_endpoints
    ), kept AS MATERIALIZED (
        -- The endpoints the users over the cap keep by name.
        SELECT k.user_id, k.endpoint
        FROM (SELECT ue.user_id, ue.endpoint,
                     row_number() OVER (PARTITION BY ue.user_id
                                        ORDER BY ue.endpoint = '(other)', ue.calls DESC, ue.endpoint COLLATE "C") AS rn
              FROM ue JOIN over_cap USING (user_id)) k
        WHERE k.rn <= p_max_endpoints
    ), other AS (
        -- The '(other)' rows, aggregated as g from the raw rows of the
        -- folded endpoints: those of a user over the cap that it does not
        -- keep. The one-time EXISTS keeps the scan from running when no
        -- user is over the cap. The membership tests stand outside the
        -- scan's join tree (a target list, NOT IN over columns that are
        -- NOT NULL) so that they run as hashed subplans whatever the row
        -- estimates, which are poor for rows recorded since the last
        -- ANALYZE.
        SELECT x.user_id, x.api_key_id,
               sum(x.quantity)::bigint                                         AS calls,
               coalesce(sum(x.quantity) FILTER (WHERE x.status_code BETWEEN 400 AND 499), 0)::bigint AS e4,
               coalesce(sum(x.quantity) FILTER (WHERE x.status_code BETWEEN 500 AND 599), 0)::bigint AS e5,
               least(sum(x.request_bytes), 9223372036854775807)::bigint        AS rq,
               least(sum(x.response_bytes), 9223372036854775807)::bigint       AS rs,
               least(sum(x.latency_ms::bigint), 9223372036854775807)::bigint   AS lat,
               percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY x.latency_ms) AS p,
               max(x.latency_ms)                                               AS mx,
               count(*)                                                        AS n
        FROM (SELECT u.user_id, u.api_key_id, u.quantity, u.status_code, u.request_bytes, u.response_bytes, u.latency_ms,
                     u.user_id IN (SELECT user_id FROM over_cap)
                     AND (u.user_id, u.endpoint) NOT IN (SELECT user_id, endpoint FROM kept) AS folded
              FROM eco_api_usage u
              WHERE u.occurred_at >= lo AND u.occurred_at < hi
                AND (p_parts = 1 OR get_byte(uuid_send(u.user_id), 15) % p_parts = p_part)
                AND EXISTS (SELECT 1 FROM over_cap)
              OFFSET 0) x
        WHERE x.folded
        GROUP BY x.user_id, x.api_key_id
    ), r AS (
        -- The day's rows: the groups of g that are not folded, and '(other)'.
        SELECT g.user_id, g.endpoint, g.api_key_id, g.calls, g.e4, g.e5, g.rq, g.rs, g.lat, g.p, g.mx, g.n
        FROM g
        WHERE NOT (g.user_id IN (SELECT user_id FROM over_cap)
                   AND (g.user_id, g.endpoint) NOT IN (SELECT user_id, endpoint FROM kept))
        UNION ALL
        SELECT o.user_id, '(other)', o.api_key_id, o.calls, o.e4, o.e5, o.rq, o.rs, o.lat, o.p, o.mx, o.n
        FROM other o
    ), gone AS (
        -- Rows of the day without a row in r any more, as 00009 deletes
        -- those without a group (a NULL API key is a key of its own).
        DELETE FROM eco_usage_daily d
        WHERE d.day = p_day
          AND (p_parts = 1 OR get_byte(uuid_send(d.user_id), 15) % p_parts = p_part)
          AND NOT EXISTS (SELECT 1 FROM r WHERE r.user_id = d.user_id AND r.endpoint = d.endpoint
                          AND r.api_key_id IS NOT DISTINCT FROM d.api_key_id)
    )
    INSERT INTO eco_usage_daily AS d (day, user_id, endpoint, api_key_id, calls, errors_4xx, errors_5xx,
        request_bytes, response_bytes, latency_sum_ms, latency_p50_ms, latency_p95_ms, latency_max_ms,
        events, aggregated_at)
    SELECT p_day, r.user_id, r.endpoint, r.api_key_id, r.calls, r.e4, r.e5, r.rq, r.rs, r.lat,
           r.p[1], r.p[2], r.mx, r.n, now()
    FROM r
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
-- 00009's function, exactly (its text is copied from there). Rollup rows
-- folded under '(other)' stay so until their day is recomputed.
DROP FUNCTION aggregate_daily_usage(date, integer, integer, integer);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION aggregate_daily_usage(p_day date, p_part integer DEFAULT 0, p_parts integer DEFAULT 1)
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

    WITH g AS MATERIALIZED (
        SELECT u.user_id, u.endpoint, u.api_key_id,
               sum(u.quantity)::bigint                                         AS calls,
               coalesce(sum(u.quantity) FILTER (WHERE u.status_code BETWEEN 400 AND 499), 0)::bigint AS e4,
               coalesce(sum(u.quantity) FILTER (WHERE u.status_code BETWEEN 500 AND 599), 0)::bigint AS e5,
               least(sum(u.request_bytes), 9223372036854775807)::bigint        AS rq,
               least(sum(u.response_bytes), 9223372036854775807)::bigint       AS rs,
               least(sum(u.latency_ms::bigint), 9223372036854775807)::bigint   AS lat,
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

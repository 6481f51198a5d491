-- Record transactions that never wait on each other, and dirty marks per
-- user and day.
--
-- 1. Record slots. Every record transaction (increment_api_calls) locks one
--    row of eco_record_slots, the lowest that no other transaction holds
--    (FOR UPDATE SKIP LOCKED, which never waits), until it commits, and
--    writes its live counters and dirty marks in rows of that slot only.
--    Two record transactions at once therefore never write the same row,
--    and neither waits for the other's commit. Before, every batch upserted
--    the dirty mark of its days and the counters of its users' days, and
--    concurrent batches for the same day queued on those rows until each
--    other's commit. With all 64 slots held (more record transactions at
--    once than the SQS mapping's MaximumConcurrency allows) a batch shares
--    slot 0 and may wait for it.
--
-- 2. The live counters are kept per user, day and slot in
--    eco_usage_counter_slots (a row for each slot that counted something:
--    one row per user and day at a concurrency of one), and
--    eco_usage_counters becomes a view that sums them, so every reader still
--    reads one row per user and day. Calls and errors sum exactly (a day of
--    a user is bounded, usage.MaxQuantity); bytes saturate at the bigint
--    maximum as everywhere else. Fixtures and tools may insert into the
--    view (the rows go to slot 0); an upsert must name the table.
--
-- 3. Dirty marks per user and day. A record transaction marks the days of
--    the users whose events it inserted (eco_usage_dirty_user_days, in its
--    slot), no longer the days as a whole, and the rollup recomputes those
--    users' rows of the day only (aggregate_daily_usage's new p_users): one
--    user's late events cost the other users' days nothing.
--    eco_usage_dirty_days keeps the marks of whole days: backfills, days
--    that retention found unaggregated, and the marks written before this
--    migration. A run clears a mark only if it is still the one it read, as
--    before.

-- +goose Up
CREATE TABLE eco_record_slots (
    slot                     smallint PRIMARY KEY CHECK (slot >= 0)
);

COMMENT ON TABLE eco_record_slots IS
    'record slots: a record transaction locks one (SKIP LOCKED) and writes counters and dirty marks in its rows only';

INSERT INTO eco_record_slots (slot) SELECT generate_series(0, 63);

ALTER TABLE eco_usage_counters RENAME TO eco_usage_counter_slots;
ALTER TABLE eco_usage_counter_slots ADD COLUMN slot smallint NOT NULL DEFAULT 0;
ALTER TABLE eco_usage_counter_slots DROP CONSTRAINT eco_usage_counters_pkey;
ALTER TABLE eco_usage_counter_slots ADD CONSTRAINT eco_usage_counter_slots_pkey PRIMARY KEY (user_id, day, slot);
ALTER INDEX eco_usage_counters_day_idx RENAME TO eco_usage_counter_slots_day_idx;

CREATE VIEW eco_usage_counters AS
SELECT user_id, day,
    sum(calls)::bigint AS calls,
    sum(errors_4xx)::bigint AS errors_4xx,
    sum(errors_5xx)::bigint AS errors_5xx,
    least(sum(request_bytes), 9223372036854775807)::bigint AS request_bytes,
    least(sum(response_bytes), 9223372036854775807)::bigint AS response_bytes,
    max(updated_at) AS updated_at
FROM eco_usage_counter_slots
GROUP BY user_id, day;

ALTER VIEW eco_usage_counters ALTER COLUMN calls SET DEFAULT 0;
ALTER VIEW eco_usage_counters ALTER COLUMN errors_4xx SET DEFAULT 0;
ALTER VIEW eco_usage_counters ALTER COLUMN errors_5xx SET DEFAULT 0;
ALTER VIEW eco_usage_counters ALTER COLUMN request_bytes SET DEFAULT 0;
ALTER VIEW eco_usage_counters ALTER COLUMN response_bytes SET DEFAULT 0;
ALTER VIEW eco_usage_counters ALTER COLUMN updated_at SET DEFAULT now();

-- An insert into the view adds a row of slot 0.
-- +goose StatementBegin
CREATE FUNCTION eco_usage_counters_insert()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO eco_usage_counter_slots (user_id, day, slot, calls, errors_4xx, errors_5xx, request_bytes, response_bytes, updated_at)
    VALUES (NEW.user_id, NEW.day, 0, NEW.calls, NEW.errors_4xx, NEW.errors_5xx, NEW.request_bytes, NEW.response_bytes, NEW.updated_at);
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER eco_usage_counters_insert INSTEAD OF INSERT ON eco_usage_counters
    FOR EACH ROW EXECUTE FUNCTION eco_usage_counters_insert();

CREATE TABLE eco_usage_dirty_user_days (
    day                      date NOT NULL,
    user_id                  uuid NOT NULL,
    slot                     smallint NOT NULL,
    marked_at                timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, user_id, slot)
);

-- increment_api_calls adds the given per-user, per-day deltas to the live
-- counters and marks those users' days dirty, in the slot it locks (see
-- above). The arrays are parallel; rows are written in key order.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION increment_api_calls(
    p_user_ids       uuid[],
    p_days           date[],
    p_calls          bigint[],
    p_errors_4xx     bigint[],
    p_errors_5xx     bigint[],
    p_request_bytes  bigint[],
    p_response_bytes bigint[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    s     smallint;
    total bigint;
BEGIN
    SELECT slot INTO s FROM eco_record_slots ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED;
    s := coalesce(s, 0); -- every slot held: share slot 0

    INSERT INTO eco_usage_dirty_user_days AS m (day, user_id, slot, marked_at)
    SELECT DISTINCT dy, u, s, now() FROM unnest(p_days, p_user_ids) AS t(dy, u) ORDER BY 1, 2
    ON CONFLICT (day, user_id, slot) DO UPDATE SET marked_at = now();

    INSERT INTO eco_usage_counter_slots AS k (user_id, day, slot, calls, errors_4xx, errors_5xx, request_bytes, response_bytes)
    -- CASE, not least(): least ignores a NULL, which must still fail here.
    SELECT u, dy, s, sum(c), sum(e4), sum(e5),
        CASE WHEN sum(rq) > 9223372036854775807 THEN 9223372036854775807 ELSE sum(rq) END,
        CASE WHEN sum(rs) > 9223372036854775807 THEN 9223372036854775807 ELSE sum(rs) END
    FROM unnest(p_user_ids, p_days, p_calls, p_errors_4xx, p_errors_5xx, p_request_bytes, p_response_bytes)
         AS t(u, dy, c, e4, e5, rq, rs)
    GROUP BY u, dy
    ORDER BY u, dy
    ON CONFLICT (user_id, day, slot) DO UPDATE SET
        calls          = k.calls + excluded.calls,
        errors_4xx     = k.errors_4xx + excluded.errors_4xx,
        errors_5xx     = k.errors_5xx + excluded.errors_5xx,
        request_bytes  = least(k.request_bytes::numeric + excluded.request_bytes, 9223372036854775807)::bigint,
        response_bytes = least(k.response_bytes::numeric + excluded.response_bytes, 9223372036854775807)::bigint,
        updated_at     = now();

    SELECT coalesce(sum(c), 0) INTO total FROM unnest(p_calls) AS c;
    RETURN total;
END;
$$;
-- +goose StatementEnd

-- aggregate_daily_usage (00010) with p_users: when given, only those users'
-- rows of the day are made (and deleted when their raw events are gone);
-- the other users' rows are not touched. The day's raw rows are still read
-- once (the raw table has no index by user: it would cost every insert),
-- but only those users' are sorted and aggregated.
DROP FUNCTION aggregate_daily_usage(date, integer, integer, integer);
-- +goose StatementBegin
CREATE FUNCTION aggregate_daily_usage(p_day date, p_part integer DEFAULT 0, p_parts integer DEFAULT 1,
    p_max_endpoints integer DEFAULT 1000, p_users uuid[] DEFAULT NULL)
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
          AND (p_users IS NULL OR u.user_id IN (SELECT unnest(p_users)))
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
                AND (p_users IS NULL OR u.user_id IN (SELECT unnest(p_users)))
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
          AND (p_users IS NULL OR d.user_id IN (SELECT unnest(p_users)))
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
-- The users' marks become marks of their days; 00010's aggregate_daily_usage
-- and 00009's increment_api_calls, exactly (their texts are copied from
-- there); the counters' slots summed into one row per user and day.
INSERT INTO eco_usage_dirty_days AS dd (day, marked_at)
SELECT day, max(marked_at) FROM eco_usage_dirty_user_days GROUP BY day ORDER BY day
ON CONFLICT (day) DO UPDATE SET marked_at = greatest(dd.marked_at, excluded.marked_at);
DROP TABLE eco_usage_dirty_user_days;

DROP FUNCTION aggregate_daily_usage(date, integer, integer, integer, uuid[]);
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION increment_api_calls(
    p_user_ids       uuid[],
    p_days           date[],
    p_calls          bigint[],
    p_errors_4xx     bigint[],
    p_errors_5xx     bigint[],
    p_request_bytes  bigint[],
    p_response_bytes bigint[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    -- Days in order, then counters in (user_id, day) order: concurrent
    -- batches lock rows in the same order and cannot deadlock.
    INSERT INTO eco_usage_dirty_days AS dd (day)
    SELECT DISTINCT dy FROM unnest(p_days) AS dy ORDER BY dy
    ON CONFLICT (day) DO UPDATE SET marked_at = now();

    INSERT INTO eco_usage_counters AS k (user_id, day, calls, errors_4xx, errors_5xx, request_bytes, response_bytes)
    -- CASE, not least(): least ignores a NULL, which must still fail here.
    SELECT u, dy, sum(c), sum(e4), sum(e5),
        CASE WHEN sum(rq) > 9223372036854775807 THEN 9223372036854775807 ELSE sum(rq) END,
        CASE WHEN sum(rs) > 9223372036854775807 THEN 9223372036854775807 ELSE sum(rs) END
    FROM unnest(p_user_ids, p_days, p_calls, p_errors_4xx, p_errors_5xx, p_request_bytes, p_response_bytes)
         AS t(u, dy, c, e4, e5, rq, rs)
    GROUP BY u, dy
    ORDER BY u, dy
    ON CONFLICT (user_id, day) DO UPDATE SET
        calls          = k.calls + excluded.calls,
        errors_4xx     = k.errors_4xx + excluded.errors_4xx,
        errors_5xx     = k.errors_5xx + excluded.errors_5xx,
        request_bytes  = least(k.request_bytes::numeric + excluded.request_bytes, 9223372036854775807)::bigint,
        response_bytes = least(k.response_bytes::numeric + excluded.response_bytes, 9223372036854775807)::bigint,
        updated_at     = now();

    SELECT coalesce(sum(c), 0) INTO total FROM unnest(p_calls) AS c;
    RETURN total;
END;
$$;
-- +goose StatementEnd

DROP TRIGGER eco_usage_counters_insert ON eco_usage_counters;
DROP FUNCTION eco_usage_counters_insert();
DROP VIEW eco_usage_counters;
INSERT INTO eco_usage_counter_slots (user_id, day, slot, calls, errors_4xx, errors_5xx, request_bytes, response_bytes, updated_at)
SELECT user_id, day, -1, sum(calls), sum(errors_4xx), sum(errors_5xx),
    least(sum(request_bytes), 9223372036854775807), least(sum(response_bytes), 9223372036854775807), max(updated_at)
FROM eco_usage_counter_slots GROUP BY user_id, day;
DELETE FROM eco_usage_counter_slots WHERE slot <> -1;
ALTER TABLE eco_usage_counter_slots DROP CONSTRAINT eco_usage_counter_slots_pkey;
ALTER TABLE eco_usage_counter_slots DROP COLUMN slot;
ALTER TABLE eco_usage_counter_slots RENAME TO eco_usage_counters;
ALTER TABLE eco_usage_counters ADD CONSTRAINT eco_usage_counters_pkey PRIMARY KEY (user_id, day);
ALTER INDEX eco_usage_counter_slots_day_idx RENAME TO eco_usage_counters_day_idx;
DROP TABLE eco_record_slots;

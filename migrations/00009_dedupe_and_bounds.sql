-- Dedupe on the event id alone, rejections keyed by message, months that
-- stay dropped, and sums that cannot overflow.
--
-- 1. The event key store. The raw table's primary key was (event_id,
--    occurred_at), because a partitioned table's unique key must hold its
--    partition key; the same id re-sent with another occurred_at was a new
--    event. eco_event_keys remembers every event id for at least
--    usage.DedupeWindow (50 days) after its first receipt, whatever its
--    occurred_at. It is LIST-partitioned by generation: generation g holds
--    the keys received in [g, g + 1) × 50 days from the Unix epoch
--    (usage.KeyGeneration computes it; the record path passes it in). A
--    batch inserts its keys into the current generation (both neighbours
--    within an hour of a boundary), skipping ids found in the previous
--    one, and inserts into the raw table only the ids the key insert
--    returned: one statement. The aggregate job creates generations ahead
--    and drops a whole generation once no batch can read it (a DROP, not
--    a DELETE of billions of rows).
--
--    The raw table loses its primary key: only ids the key store returned
--    as new ever reach it, so the index could never refuse a row, and it
--    was the costliest part of every insert (a btree on random UUIDs) and
--    a third of the raw table's size per event.
--
-- 2. Rejections carry their position in the message; (source, message_id,
--    position) is unique, so a redelivered batch quarantines nothing twice.
--    Rows quarantined before this migration have no position (NULL) and no
--    key.
--
-- 3. A raw month dropped by retention is remembered, and
--    ensure_usage_partitions never creates it again: a late event for it
--    is quarantined instead of recreating the month, whose days would then
--    be recomputed from that one event and lose their rollup.
--
-- 4. Sums of bytes and latency saturate at the bigint maximum instead of
--    failing with "bigint out of range" (one event of 9223372036854775807
--    bytes stopped every later batch of its user and day). Calls and errors
--    are bounded by usage.MaxQuantity and stay exact (see usage's bounds).
--    least(sum(x), max) is used over NOT NULL columns only: least ignores
--    a NULL.

-- +goose Up

CREATE TABLE eco_event_keys (
    gen                      integer NOT NULL,
    event_id                 uuid NOT NULL,
    PRIMARY KEY (gen, event_id)
) PARTITION BY LIST (gen);

COMMENT ON TABLE eco_event_keys IS
    'event ids recorded, by generation of receipt (usage.KeyGeneration); the dedupe key of the record path';

-- ensure_event_key_generations creates the generations p_gens of
-- eco_event_keys that do not exist and returns how many it created. It is
-- safe to call concurrently and repeatedly.
-- +goose StatementBegin
CREATE FUNCTION ensure_event_key_generations(p_gens integer[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    g       integer;
    created integer := 0;
BEGIN
    FOREACH g IN ARRAY p_gens LOOP
        IF to_regclass('eco_event_keys_g' || g) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF eco_event_keys FOR VALUES IN (%s)',
                    'eco_event_keys_g' || g, g);
                created := created + 1;
            EXCEPTION WHEN duplicate_table THEN
                NULL; -- created by a concurrent caller
            END;
        END IF;
    END LOOP;
    RETURN created;
END;
$$;
-- +goose StatementEnd

-- The current and the next generation, and the ids of the events received
-- within the dedupe window (the current generation's previous one is read
-- by the record path, so that is where they would be looked for anyway).
SELECT ensure_event_key_generations(ARRAY[g, g + 1])
FROM (SELECT floor(extract(epoch FROM now()) / (50 * 86400))::integer AS g) x;

INSERT INTO eco_event_keys (gen, event_id)
SELECT DISTINCT floor(extract(epoch FROM now()) / (50 * 86400))::integer, event_id
FROM eco_api_usage
WHERE received_at >= now() - interval '50 days'
ON CONFLICT DO NOTHING;

ALTER TABLE eco_api_usage DROP CONSTRAINT eco_api_usage_pkey;

ALTER TABLE eco_rejected_events ADD COLUMN position integer;

COMMENT ON COLUMN eco_rejected_events.position IS
    'the event''s index in its message (0 for a one-event message or one refused whole); NULL before keys existed or without a message id';

CREATE UNIQUE INDEX eco_rejected_events_key ON eco_rejected_events (source, message_id, position)
    WHERE position IS NOT NULL;

-- Raw months dropped by retention; ensure_usage_partitions leaves them
-- dropped.
CREATE TABLE eco_usage_dropped_months (
    month                    date PRIMARY KEY CHECK (month = date_trunc('month', month)),
    dropped_at               timestamptz NOT NULL
);

-- The months dropped before this migration: aggregated days whose
-- partition is gone.
INSERT INTO eco_usage_dropped_months (month, dropped_at)
SELECT DISTINCT date_trunc('month', a.day)::date, now()
FROM eco_usage_aggregated_days a
WHERE to_regclass('eco_api_usage_p' || to_char(a.day, 'YYYYMM')) IS NULL;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ensure_usage_partitions(from_ts timestamptz, months integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    m       date := date_trunc('month', from_ts AT TIME ZONE 'UTC')::date;
    created integer := 0;
    name    text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        name := 'eco_api_usage_p' || to_char(m + make_interval(months => i), 'YYYYMM');
        IF to_regclass(name) IS NULL
           AND NOT EXISTS (SELECT 1 FROM eco_usage_dropped_months d WHERE d.month = (m + make_interval(months => i))::date) THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF eco_api_usage FOR VALUES FROM (%L) TO (%L)',
                    name,
                    (m + make_interval(months => i))::timestamp AT TIME ZONE 'UTC',
                    (m + make_interval(months => i + 1))::timestamp AT TIME ZONE 'UTC');
                created := created + 1;
            EXCEPTION WHEN duplicate_table THEN
                NULL; -- created by a concurrent caller
            END;
        END IF;
    END LOOP;
    RETURN created;
END;
$$;
-- +goose StatementEnd

-- increment_api_calls (00002) with saturating byte counters. A batch's
-- calls are at most 10,000 × usage.MaxQuantity and a counter's calls at
-- most a day of them: exact.
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

-- aggregate_daily_usage (00003) with saturating sums of bytes and latency.
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

-- refresh_usage_user_pairs (00007) with saturating sums of bytes over a
-- user's endpoints.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION refresh_usage_user_pairs(p_days date[], p_users uuid[])
RETURNS void
LANGUAGE sql AS $$
    WITH pairs AS (
        SELECT DISTINCT d AS day, u AS user_id FROM unnest(p_days, p_users) AS t(d, u)
    ), old AS (
        SELECT s.day, s.user_id, s.calls, s.errors_4xx, s.errors_5xx
        FROM eco_usage_user_daily s JOIN pairs p ON s.day = p.day AND s.user_id = p.user_id
    ), gone AS (
        DELETE FROM eco_usage_user_daily s USING pairs p
        WHERE s.day = p.day AND s.user_id = p.user_id
          AND NOT EXISTS (SELECT 1 FROM eco_usage_daily d WHERE d.user_id = p.user_id AND d.day = p.day)
    ), new AS (
        INSERT INTO eco_usage_user_daily AS s (day, user_id, calls, errors_4xx, errors_5xx, request_bytes, response_bytes, latency_p95_ms)
        SELECT d.day, d.user_id, sum(d.calls), sum(d.errors_4xx), sum(d.errors_5xx),
            least(sum(d.request_bytes), 9223372036854775807)::bigint, least(sum(d.response_bytes), 9223372036854775807)::bigint,
            max(d.latency_p95_ms)
        FROM pairs p JOIN eco_usage_daily d ON d.user_id = p.user_id AND d.day = p.day
        GROUP BY d.day, d.user_id
        ORDER BY d.day, d.user_id
        ON CONFLICT (day, user_id) DO UPDATE SET
            calls = excluded.calls, errors_4xx = excluded.errors_4xx, errors_5xx = excluded.errors_5xx,
            request_bytes = excluded.request_bytes, response_bytes = excluded.response_bytes,
            latency_p95_ms = excluded.latency_p95_ms
        RETURNING s.day, s.user_id, s.calls, s.errors_4xx, s.errors_5xx
    ), delta AS (
        SELECT day, user_id, coalesce(n.calls, 0) - coalesce(o.calls, 0) AS calls,
            coalesce(n.errors_4xx, 0) - coalesce(o.errors_4xx, 0) AS e4,
            coalesce(n.errors_5xx, 0) - coalesce(o.errors_5xx, 0) AS e5
        FROM old o FULL JOIN new n USING (day, user_id)
    )
    SELECT add_usage_user_months(array_agg(day), array_agg(user_id), array_agg(calls), array_agg(e4), array_agg(e5))
    FROM delta
    WHERE (calls, e4, e5) <> (0, 0, 0);
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION refresh_usage_user_daily(p_from date, p_to date)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM eco_usage_user_daily WHERE day BETWEEN p_from AND p_to;
    INSERT INTO eco_usage_user_daily (day, user_id, calls, errors_4xx, errors_5xx, request_bytes, response_bytes, latency_p95_ms)
    SELECT day, user_id, sum(calls), sum(errors_4xx), sum(errors_5xx),
        least(sum(request_bytes), 9223372036854775807)::bigint, least(sum(response_bytes), 9223372036854775807)::bigint,
        max(latency_p95_ms)
    FROM eco_usage_daily WHERE day BETWEEN p_from AND p_to
    GROUP BY day, user_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM rebuild_usage_user_months(p_from, p_to);
    RETURN n;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- The saturating sums stay: same signatures, and they fail on nothing the
-- earlier bodies accepted.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ensure_usage_partitions(from_ts timestamptz, months integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    m       date := date_trunc('month', from_ts AT TIME ZONE 'UTC')::date;
    created integer := 0;
    name    text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        name := 'eco_api_usage_p' || to_char(m + make_interval(months => i), 'YYYYMM');
        IF to_regclass(name) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF eco_api_usage FOR VALUES FROM (%L) TO (%L)',
                    name,
                    (m + make_interval(months => i))::timestamp AT TIME ZONE 'UTC',
                    (m + make_interval(months => i + 1))::timestamp AT TIME ZONE 'UTC');
                created := created + 1;
            EXCEPTION WHEN duplicate_table THEN
                NULL; -- created by a concurrent caller
            END;
        END IF;
    END LOOP;
    RETURN created;
END;
$$;
-- +goose StatementEnd
DROP TABLE eco_usage_dropped_months;
DROP INDEX eco_rejected_events_key;
ALTER TABLE eco_rejected_events DROP COLUMN position;
ALTER TABLE eco_api_usage ADD PRIMARY KEY (event_id, occurred_at);
DROP FUNCTION ensure_event_key_generations(integer[]);
DROP TABLE eco_event_keys;

-- increment_api_calls as 00002 defined it, exactly (copied from there).
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
    SELECT u, dy, sum(c), sum(e4), sum(e5), sum(rq), sum(rs)
    FROM unnest(p_user_ids, p_days, p_calls, p_errors_4xx, p_errors_5xx, p_request_bytes, p_response_bytes)
         AS t(u, dy, c, e4, e5, rq, rs)
    GROUP BY u, dy
    ORDER BY u, dy
    ON CONFLICT (user_id, day) DO UPDATE SET
        calls          = k.calls + excluded.calls,
        errors_4xx     = k.errors_4xx + excluded.errors_4xx,
        errors_5xx     = k.errors_5xx + excluded.errors_5xx,
        request_bytes  = k.request_bytes + excluded.request_bytes,
        response_bytes = k.response_bytes + excluded.response_bytes,
        updated_at     = now();

    SELECT coalesce(sum(c), 0) INTO total FROM unnest(p_calls) AS c;
    RETURN total;
END;
$$;
-- +goose StatementEnd

-- aggregate_daily_usage as 00003 defined it, exactly (copied from there).
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

-- refresh_usage_user_daily as 00007 defined it, exactly (copied from there).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION refresh_usage_user_daily(p_from date, p_to date)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM eco_usage_user_daily WHERE day BETWEEN p_from AND p_to;
    INSERT INTO eco_usage_user_daily (day, user_id, calls, errors_4xx, errors_5xx, request_bytes, response_bytes, latency_p95_ms)
    SELECT day, user_id, sum(calls), sum(errors_4xx), sum(errors_5xx), sum(request_bytes), sum(response_bytes),
        max(latency_p95_ms)
    FROM eco_usage_daily WHERE day BETWEEN p_from AND p_to
    GROUP BY day, user_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM rebuild_usage_user_months(p_from, p_to);
    RETURN n;
END;
$$;
-- +goose StatementEnd

-- refresh_usage_user_pairs as 00007 defined it, exactly (copied from there).
-- +goose StatementBegin
-- refresh_usage_user_pairs (00006) now also adds each summary row's change
-- to its month row. The day and user of a summary row have one writer at a
-- time (the aggregation of that day), so old and new are exact.
CREATE OR REPLACE FUNCTION refresh_usage_user_pairs(p_days date[], p_users uuid[])
RETURNS void
LANGUAGE sql AS $$
    WITH pairs AS (
        SELECT DISTINCT d AS day, u AS user_id FROM unnest(p_days, p_users) AS t(d, u)
    ), old AS (
        SELECT s.day, s.user_id, s.calls, s.errors_4xx, s.errors_5xx
        FROM eco_usage_user_daily s JOIN pairs p ON s.day = p.day AND s.user_id = p.user_id
    ), gone AS (
        DELETE FROM eco_usage_user_daily s USING pairs p
        WHERE s.day = p.day AND s.user_id = p.user_id
          AND NOT EXISTS (SELECT 1 FROM eco_usage_daily d WHERE d.user_id = p.user_id AND d.day = p.day)
    ), new AS (
        INSERT INTO eco_usage_user_daily AS s (day, user_id, calls, errors_4xx, errors_5xx, request_bytes, response_bytes, latency_p95_ms)
        SELECT d.day, d.user_id, sum(d.calls), sum(d.errors_4xx), sum(d.errors_5xx), sum(d.request_bytes), sum(d.response_bytes),
            max(d.latency_p95_ms)
        FROM pairs p JOIN eco_usage_daily d ON d.user_id = p.user_id AND d.day = p.day
        GROUP BY d.day, d.user_id
        ORDER BY d.day, d.user_id
        ON CONFLICT (day, user_id) DO UPDATE SET
            calls = excluded.calls, errors_4xx = excluded.errors_4xx, errors_5xx = excluded.errors_5xx,
            request_bytes = excluded.request_bytes, response_bytes = excluded.response_bytes,
            latency_p95_ms = excluded.latency_p95_ms
        RETURNING s.day, s.user_id, s.calls, s.errors_4xx, s.errors_5xx
    ), delta AS (
        SELECT day, user_id, coalesce(n.calls, 0) - coalesce(o.calls, 0) AS calls,
            coalesce(n.errors_4xx, 0) - coalesce(o.errors_4xx, 0) AS e4,
            coalesce(n.errors_5xx, 0) - coalesce(o.errors_5xx, 0) AS e5
        FROM old o FULL JOIN new n USING (day, user_id)
    )
    SELECT add_usage_user_months(array_agg(day), array_agg(user_id), array_agg(calls), array_agg(e4), array_agg(e5))
    FROM delta
    WHERE (calls, e4, e5) <> (0, 0, 0);
$$;
-- +goose StatementEnd

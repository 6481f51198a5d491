-- Per-user, per-month running totals, so that the admin reports (summary,
-- top users) read at most two rows per user for a 30-day range, and 13 for
-- 366 days, instead of one row per user and day.
--
-- A row holds, for one user and one calendar month, the month-to-date
-- totals of eco_usage_user_daily: element i of each array is the sum of
-- days 1..i of the month, and every array is as long as the month. The
-- total of days a..b of the month is then arr[b] - arr[a - 1] (arr[0] is
-- NULL, read as 0): two array reads per row, whatever the length of the
-- range.
--
-- It is kept in step with eco_usage_user_daily by refresh_usage_user_pairs
-- (the triggers on eco_usage_daily), in the same transaction, and rebuilt by
-- refresh_usage_user_daily after bulk loads. A month whose rollup rows are
-- all deleted keeps a row of zeros.

-- +goose Up

CREATE TABLE eco_usage_user_monthly (
    month                    date NOT NULL CHECK (month = date_trunc('month', month)),
    user_id                  uuid NOT NULL,
    calls                    bigint[] NOT NULL,
    errors_4xx               bigint[] NOT NULL,
    errors_5xx               bigint[] NOT NULL,
    PRIMARY KEY (month, user_id)
);

-- One row per month that has month rows: writers of a month's rows lock it
-- first (add_usage_user_months).
CREATE TABLE eco_usage_user_month_locks (
    month                    date PRIMARY KEY
);

-- The month refresh reads a user's days of one month; the admin reports no
-- longer scan eco_usage_user_daily by day. GET /v1/usage/daily reads a
-- user's closed days from it too (one row per day instead of one per
-- endpoint and key), so it carries the day's highest per-endpoint p95.
DROP INDEX eco_usage_user_daily_cover_idx;
ALTER TABLE eco_usage_user_daily ADD COLUMN latency_p95_ms integer;
UPDATE eco_usage_user_daily s SET latency_p95_ms = d.p95
FROM (SELECT day, user_id, max(latency_p95_ms) AS p95 FROM eco_usage_daily GROUP BY 1, 2) d
WHERE d.day = s.day AND d.user_id = s.user_id;
CREATE INDEX eco_usage_user_daily_user_idx ON eco_usage_user_daily (user_id, day)
    INCLUDE (calls, errors_4xx, errors_5xx);

-- +goose StatementBegin
-- usage_month_steps returns the month-to-date array (length p_len) of
-- values p_values added on days p_days of the month.
CREATE FUNCTION usage_month_steps(p_len int, p_days int[], p_values bigint[])
RETURNS bigint[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN cardinality(p_days) = 1
        THEN array_fill(0::bigint, ARRAY[p_days[1] - 1]) || array_fill(p_values[1], ARRAY[p_len - p_days[1] + 1])
        ELSE ARRAY(
            SELECT coalesce(sum(v) FILTER (WHERE d <= i), 0)::bigint
            FROM generate_series(1, p_len) AS i CROSS JOIN unnest(p_days, p_values) AS u(d, v)
            GROUP BY i ORDER BY i)
    END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- usage_array_add adds two arrays of the same length element by element.
CREATE FUNCTION usage_array_add(a bigint[], b bigint[])
RETURNS bigint[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY(SELECT x + y FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i) ORDER BY i);
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- usage_month_add adds values p_values on days p_days to the month-to-date
-- array a. The aggregation's common change is one day whose later days in
-- the month are still empty: the array keeps its prefix and the rest becomes
-- one value (array_fill, no per-element work).
CREATE FUNCTION usage_month_add(a bigint[], p_days int[], p_values bigint[])
RETURNS bigint[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN cardinality(p_days) = 1 AND a[cardinality(a)] = a[p_days[1]]
        THEN a[1:p_days[1] - 1] || array_fill(a[p_days[1]] + p_values[1], ARRAY[cardinality(a) - p_days[1] + 1])
        ELSE usage_array_add(a, usage_month_steps(cardinality(a), p_days, p_values))
    END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- add_usage_user_months adds the changes of eco_usage_user_daily rows
-- (new minus old, per day and user) to the month rows.
--
-- Several days of one month are aggregated at once, in concurrent
-- transactions that change the same month rows. A writer therefore first
-- locks the month (its row in eco_usage_user_month_locks, until commit: the
-- end of the aggregation of a day, which writes the rollup last), then, in
-- a later statement that sees what the previous writer committed, adds its
-- changes. Locking the month, not the rows, keeps two days from locking
-- their users' rows in different orders and deadlocking.
CREATE FUNCTION add_usage_user_months(p_days date[], p_users uuid[], p_calls bigint[], p_e4 bigint[], p_e5 bigint[])
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO eco_usage_user_month_locks AS l (month)
    SELECT DISTINCT date_trunc('month', d)::date FROM unnest(p_days) AS d
    ORDER BY 1
    ON CONFLICT (month) DO UPDATE SET month = l.month;

    WITH d AS (
        SELECT date_trunc('month', t.day)::date AS month, t.user_id,
            (date_trunc('month', t.day) + interval '1 month')::date - date_trunc('month', t.day)::date AS len,
            array_agg(extract(day FROM t.day)::int) AS days,
            array_agg(t.calls) AS calls, array_agg(t.e4) AS e4, array_agg(t.e5) AS e5
        FROM unnest(p_days, p_users, p_calls, p_e4, p_e5) AS t(day, user_id, calls, e4, e5)
        GROUP BY 1, 2, 3
    ), upd AS (
        UPDATE eco_usage_user_monthly m SET
            calls = usage_month_add(m.calls, d.days, d.calls),
            errors_4xx = usage_month_add(m.errors_4xx, d.days, d.e4),
            errors_5xx = usage_month_add(m.errors_5xx, d.days, d.e5)
        FROM d
        WHERE m.month = d.month AND m.user_id = d.user_id
        RETURNING m.month, m.user_id
    )
    INSERT INTO eco_usage_user_monthly AS m (month, user_id, calls, errors_4xx, errors_5xx)
    SELECT d.month, d.user_id, usage_month_steps(d.len, d.days, d.calls),
        usage_month_steps(d.len, d.days, d.e4), usage_month_steps(d.len, d.days, d.e5)
    FROM d
    WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.month = d.month AND upd.user_id = d.user_id)
    ORDER BY d.month, d.user_id
    ON CONFLICT (month, user_id) DO UPDATE SET
        calls = usage_array_add(m.calls, excluded.calls),
        errors_4xx = usage_array_add(m.errors_4xx, excluded.errors_4xx),
        errors_5xx = usage_array_add(m.errors_5xx, excluded.errors_5xx);
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- rebuild_usage_user_months recomputes the month rows of the months
-- overlapping [p_from, p_to] from eco_usage_user_daily, for bulk loads
-- (refresh_usage_user_daily); nothing else may write the summaries
-- meanwhile.
CREATE FUNCTION rebuild_usage_user_months(p_from date, p_to date)
RETURNS void
LANGUAGE sql AS $$
    DELETE FROM eco_usage_user_monthly WHERE month BETWEEN date_trunc('month', p_from) AND p_to;

    INSERT INTO eco_usage_user_monthly (month, user_id, calls, errors_4xx, errors_5xx)
    SELECT month, user_id, usage_month_steps(len, days, calls), usage_month_steps(len, days, e4),
        usage_month_steps(len, days, e5)
    FROM (
        SELECT date_trunc('month', day)::date AS month, user_id,
            (date_trunc('month', day) + interval '1 month')::date - date_trunc('month', day)::date AS len,
            array_agg(extract(day FROM day)::int) AS days, array_agg(calls) AS calls,
            array_agg(errors_4xx) AS e4, array_agg(errors_5xx) AS e5
        FROM eco_usage_user_daily
        WHERE day >= date_trunc('month', p_from) AND day < date_trunc('month', p_to) + interval '1 month'
        GROUP BY 1, 2, 3
    ) s;
$$;
-- +goose StatementEnd

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

-- Existing summaries, if any.
SELECT rebuild_usage_user_months(min(day), max(day)) FROM eco_usage_user_daily HAVING count(*) > 0;

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION refresh_usage_user_daily(p_from date, p_to date)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM eco_usage_user_daily WHERE day BETWEEN p_from AND p_to;
    INSERT INTO eco_usage_user_daily (day, user_id, calls, errors_4xx, errors_5xx, request_bytes, response_bytes)
    SELECT day, user_id, sum(calls), sum(errors_4xx), sum(errors_5xx), sum(request_bytes), sum(response_bytes)
    FROM eco_usage_daily WHERE day BETWEEN p_from AND p_to
    GROUP BY day, user_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION refresh_usage_user_pairs(p_days date[], p_users uuid[])
RETURNS void
LANGUAGE sql AS $$
    WITH pairs AS (
        SELECT DISTINCT d AS day, u AS user_id FROM unnest(p_days, p_users) AS t(d, u)
    ), gone AS (
        DELETE FROM eco_usage_user_daily s USING pairs p
        WHERE s.day = p.day AND s.user_id = p.user_id
          AND NOT EXISTS (SELECT 1 FROM eco_usage_daily d WHERE d.user_id = p.user_id AND d.day = p.day)
    )
    INSERT INTO eco_usage_user_daily AS s (day, user_id, calls, errors_4xx, errors_5xx, request_bytes, response_bytes)
    SELECT d.day, d.user_id, sum(d.calls), sum(d.errors_4xx), sum(d.errors_5xx), sum(d.request_bytes), sum(d.response_bytes)
    FROM pairs p JOIN eco_usage_daily d ON d.user_id = p.user_id AND d.day = p.day
    GROUP BY d.day, d.user_id
    ORDER BY d.day, d.user_id
    ON CONFLICT (day, user_id) DO UPDATE SET
        calls = excluded.calls, errors_4xx = excluded.errors_4xx, errors_5xx = excluded.errors_5xx,
        request_bytes = excluded.request_bytes, response_bytes = excluded.response_bytes;
$$;
-- +goose StatementEnd

DROP FUNCTION rebuild_usage_user_months(date, date);
DROP FUNCTION add_usage_user_months(date[], uuid[], bigint[], bigint[], bigint[]);
DROP FUNCTION usage_month_add(bigint[], int[], bigint[]);
DROP FUNCTION usage_array_add(bigint[], bigint[]);
DROP FUNCTION usage_month_steps(int, int[], bigint[]);
DROP INDEX eco_usage_user_daily_user_idx;
ALTER TABLE eco_usage_user_daily DROP COLUMN latency_p95_ms;
CREATE INDEX eco_usage_user_daily_cover_idx ON eco_usage_user_daily (day)
    INCLUDE (user_id, calls, errors_4xx, errors_5xx);
DROP TABLE eco_usage_user_month_locks;
DROP TABLE eco_usage_user_monthly;

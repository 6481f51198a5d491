-- increment_api_calls as plpgsql: PostgreSQL (before 18) plans a LANGUAGE
-- sql function's body afresh on every call, which cost the record path
-- about two thirds of its throughput; plpgsql caches the plans of its
-- static statements for the session. Same signature, same effect.

-- +goose Up
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

-- Counter rows are updated in place many times a day: leave room on each
-- page so the updates are HOT (no index maintenance).
ALTER TABLE eco_usage_counters SET (fillfactor = 50);

-- +goose Down
ALTER TABLE eco_usage_counters RESET (fillfactor);
-- increment_api_calls as 00001 defined it, exactly (copied from there).
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
LANGUAGE sql AS $$
    WITH d AS (
        SELECT u, dy, sum(c) AS c, sum(e4) AS e4, sum(e5) AS e5, sum(rq) AS rq, sum(rs) AS rs
        FROM unnest(p_user_ids, p_days, p_calls, p_errors_4xx, p_errors_5xx, p_request_bytes, p_response_bytes)
             AS t(u, dy, c, e4, e5, rq, rs)
        GROUP BY u, dy
    ), dirty AS (
        INSERT INTO eco_usage_dirty_days (day)
        SELECT DISTINCT dy FROM d ORDER BY dy
        ON CONFLICT (day) DO UPDATE SET marked_at = now()
    ), bumped AS (
        INSERT INTO eco_usage_counters AS k (user_id, day, calls, errors_4xx, errors_5xx, request_bytes, response_bytes)
        SELECT u, dy, c, e4, e5, rq, rs FROM d ORDER BY u, dy
        ON CONFLICT (user_id, day) DO UPDATE SET
            calls          = k.calls + excluded.calls,
            errors_4xx     = k.errors_4xx + excluded.errors_4xx,
            errors_5xx     = k.errors_5xx + excluded.errors_5xx,
            request_bytes  = k.request_bytes + excluded.request_bytes,
            response_bytes = k.response_bytes + excluded.response_bytes,
            updated_at     = now()
    )
    -- Data-modifying CTEs run to completion whether or not they are read.
    SELECT coalesce(sum(c), 0)::bigint FROM d;
$$;
-- +goose StatementEnd

-- Analytics: the plan audit trail, a per-user, per-day summary of the daily
-- rollup for the admin reports, and the indexes of the analytics queries.

-- +goose Up

-- Every change an admin makes to a user's plan: who, when, and the
-- subscription row before (NULL: the user had none) and after.
CREATE TABLE eco_plan_audit (
    audit_id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    who                      text NOT NULL,
    at                       timestamptz NOT NULL,
    user_id                  uuid NOT NULL,
    old                      jsonb,
    new                      jsonb NOT NULL
);

CREATE INDEX eco_plan_audit_user_idx ON eco_plan_audit (user_id, at DESC);

-- eco_usage_user_daily is eco_usage_daily summed over endpoints and keys:
-- one row per user and day. The admin reports (summary, top users) scan a
-- range of days over every user; from this table that is 10,000 rows per
-- day instead of 100,000+ (ten endpoints per user), and the covering index
-- lets them run as index-only scans.
--
-- It is kept in step with eco_usage_daily by the statement-level triggers
-- below, in the same transaction as whatever writes the rollup
-- (aggregate_daily_usage()), so no job has to fill it. Bulk loads that
-- bypass triggers (session_replication_role = replica) must call
-- refresh_usage_user_daily(from, to) afterwards.
CREATE TABLE eco_usage_user_daily (
    day                      date NOT NULL,
    user_id                  uuid NOT NULL,
    calls                    bigint NOT NULL,
    errors_4xx               bigint NOT NULL,
    errors_5xx               bigint NOT NULL,
    request_bytes            bigint NOT NULL,
    response_bytes           bigint NOT NULL,
    PRIMARY KEY (day, user_id)
);

CREATE INDEX eco_usage_user_daily_cover_idx ON eco_usage_user_daily (day)
    INCLUDE (user_id, calls, errors_4xx, errors_5xx);

-- +goose StatementBegin
-- refresh_usage_user_pairs recomputes the summary rows of the given
-- (day, user) pairs from eco_usage_daily, removing those with no rollup rows
-- left.
CREATE FUNCTION refresh_usage_user_pairs(p_days date[], p_users uuid[])
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

-- +goose StatementBegin
-- refresh_usage_user_daily rebuilds the summary of a range of days from
-- eco_usage_daily and returns the rows written.
CREATE FUNCTION refresh_usage_user_daily(p_from date, p_to date)
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
CREATE FUNCTION eco_usage_daily_sync_new() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_usage_user_pairs(array_agg(day), array_agg(user_id)) FROM changed_new;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION eco_usage_daily_sync_old() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_usage_user_pairs(array_agg(day), array_agg(user_id)) FROM changed_old;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION eco_usage_daily_sync_both() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_usage_user_pairs(array_agg(day), array_agg(user_id))
    FROM (SELECT day, user_id FROM changed_old UNION SELECT day, user_id FROM changed_new) c;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER eco_usage_daily_sync_insert AFTER INSERT ON eco_usage_daily
    REFERENCING NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION eco_usage_daily_sync_new();
CREATE TRIGGER eco_usage_daily_sync_update AFTER UPDATE ON eco_usage_daily
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION eco_usage_daily_sync_both();
CREATE TRIGGER eco_usage_daily_sync_delete AFTER DELETE ON eco_usage_daily
    REFERENCING OLD TABLE AS changed_old
    FOR EACH STATEMENT EXECUTE FUNCTION eco_usage_daily_sync_old();

-- Existing rollups, if any.
SELECT refresh_usage_user_daily('1970-01-01', '9999-12-31');

-- The overage list reads one month of periods in cursor order, through
-- eco_overage_ledger_period_idx (period_start, user_id, seq) of 00005.

-- The admin reports read today's and dirty days' live counters of every user.
CREATE INDEX eco_usage_counters_day_idx ON eco_usage_counters (day);

-- +goose Down
DROP INDEX eco_usage_counters_day_idx;
DROP TRIGGER eco_usage_daily_sync_delete ON eco_usage_daily;
DROP TRIGGER eco_usage_daily_sync_update ON eco_usage_daily;
DROP TRIGGER eco_usage_daily_sync_insert ON eco_usage_daily;
DROP FUNCTION eco_usage_daily_sync_both();
DROP FUNCTION eco_usage_daily_sync_old();
DROP FUNCTION eco_usage_daily_sync_new();
DROP FUNCTION refresh_usage_user_daily(date, date);
DROP FUNCTION refresh_usage_user_pairs(date[], uuid[]);
DROP TABLE eco_usage_user_daily;
DROP TABLE eco_plan_audit;

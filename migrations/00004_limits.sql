-- Rate limiting (GCRA state), the combined limit check of the request path,
-- and the usage alerts ledger.
--
-- Times in the limiter are integer microseconds since the Unix epoch, passed
-- in by the caller (the clock is injected; the database's clock is never
-- read), so that every decision is exact integer arithmetic.

-- +goose Up

-- One row per limiter key ("k:<api key id>" or "u:<user id>"): the GCRA
-- theoretical arrival time. UNLOGGED: the state is soft (after a crash every
-- key starts with a full burst), and a transaction that writes only unlogged
-- tables commits without waiting for a WAL flush, which keeps a decision
-- well under a millisecond with fsync on. fillfactor leaves room for HOT
-- updates: every decision rewrites its row.
CREATE UNLOGGED TABLE eco_rate_limits (
    key                      text PRIMARY KEY,
    tat                      bigint NOT NULL,
    allowed                  boolean NOT NULL
) WITH (fillfactor = 70);

COMMENT ON COLUMN eco_rate_limits.tat IS
    'GCRA theoretical arrival time, microseconds since the Unix epoch';
COMMENT ON COLUMN eco_rate_limits.allowed IS
    'the outcome of the last decision on the key (RETURNING cannot see the old row)';

-- rate_limit_take is one GCRA step (the algorithm of go-redis/redis_rate)
-- on key at p_now for a call of p_cost, with emission interval p_interval
-- (microseconds per call, 1/rate) and burst p_burst. It is one statement:
-- the row lock of INSERT ... ON CONFLICT DO UPDATE serialises concurrent
-- callers on the same key, and each sees the previous caller's TAT.
--
--   tat0     = max(stored tat, now)          (a fresh key has tat0 = now)
--   new_tat  = tat0 + interval * cost
--   allowed  = new_tat - interval * burst <= now
--
-- Allowed: remaining = (now - (new_tat - interval*burst)) / interval, reset =
-- new_tat - now. Refused: the TAT is unchanged, remaining = 0, reset = tat0 -
-- now, retry = new_tat - interval*burst - now. In any window of length T
-- starting from a full burst, at most burst + floor(T / interval) calls of
-- cost 1 are admitted.
-- +goose StatementBegin
CREATE FUNCTION rate_limit_take(p_key text, p_now bigint, p_interval bigint, p_burst bigint, p_cost bigint,
    OUT allowed boolean, OUT remaining bigint, OUT reset_us bigint, OUT retry_us bigint)
-- plpgsql, not sql: PostgreSQL before 18 plans a non-inlined SQL function's
-- statement on every call; plpgsql caches the plan per session.
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO eco_rate_limits AS r (key, tat, allowed)
    VALUES (p_key,
            CASE WHEN p_cost <= p_burst THEN p_now + p_interval * p_cost ELSE p_now END,
            p_cost <= p_burst)
    ON CONFLICT (key) DO UPDATE SET
        tat = CASE WHEN greatest(r.tat, p_now) + p_interval * (p_cost - p_burst) <= p_now
                   THEN greatest(r.tat, p_now) + p_interval * p_cost
                   ELSE r.tat END,
        allowed = greatest(r.tat, p_now) + p_interval * (p_cost - p_burst) <= p_now
    RETURNING
        r.allowed,
        CASE WHEN r.allowed THEN (p_now - r.tat + p_interval * p_burst) / p_interval ELSE 0 END,
        CASE WHEN r.allowed THEN r.tat - p_now ELSE greatest(r.tat, p_now) - p_now END,
        CASE WHEN r.allowed THEN 0 ELSE greatest(r.tat, p_now) + p_interval * (p_cost - p_burst) - p_now END
    INTO allowed, remaining, reset_us, retry_us;
END;
$$;
-- +goose StatementEnd

-- One row per user, billing period and threshold (percent of the included
-- calls) whose alert has been claimed. INSERT ... ON CONFLICT DO NOTHING
-- RETURNING decides who emits: exactly one caller gets the row back.
CREATE TABLE eco_usage_alerts (
    user_id                  uuid NOT NULL,
    period_start             timestamptz NOT NULL,
    threshold                integer NOT NULL CHECK (threshold > 0),
    period_end               timestamptz NOT NULL,
    included_calls           bigint NOT NULL,
    used_calls               bigint NOT NULL,
    created_at               timestamptz NOT NULL,
    PRIMARY KEY (user_id, period_start, threshold)
);

-- limit_check is the request path's cold decision in one round trip: the
-- effective plan (plan + per-user overrides; free with calendar-month
-- periods when the user has no subscription), the billing period holding
-- p_now, the calls used in it from the live counters (never less than
-- p_known_used, what the caller already knows it admitted), the alert
-- thresholds newly crossed (claimed in eco_usage_alerts), and one GCRA step
-- on p_key for p_cost. The GCRA step is skipped (took false) when the quota
-- is hard and used + cost exceeds it.
-- +goose StatementBegin
CREATE FUNCTION limit_check(p_user uuid, p_key text, p_now timestamptz, p_cost bigint,
    p_known_used bigint, p_thresholds integer[],
    OUT plan_id text, OUT included_calls bigint, OUT hard_limit boolean,
    OUT rate_per_second double precision, OUT burst integer, OUT interval_us bigint,
    OUT overage_unit_size bigint, OUT overage_unit_price bigint, OUT currency text,
    OUT period_start timestamptz, OUT period_end timestamptz, OUT used bigint,
    OUT alerts integer[], OUT took boolean,
    OUT allowed boolean, OUT remaining bigint, OUT reset_us bigint, OUT retry_us bigint)
LANGUAGE plpgsql AS $$
DECLARE
    anchor  timestamp;
    n       timestamp := p_now AT TIME ZONE 'UTC';
    k       integer;
    s       timestamp;
    e       timestamp;
    now_us  bigint := (extract(epoch FROM p_now) * 1000000)::bigint;
BEGIN
    SELECT p.plan_id,
           coalesce(u.included_calls, p.included_calls), coalesce(u.hard_limit, p.hard_limit),
           coalesce(u.rate_per_second, p.rate_per_second), coalesce(u.burst, p.burst),
           coalesce(u.overage_unit_size, p.overage_unit_size), coalesce(u.overage_unit_price, p.overage_unit_price),
           coalesce(u.currency, p.currency),
           coalesce(u.period_anchor AT TIME ZONE 'UTC', timestamp '2000-01-01')
      INTO plan_id, included_calls, hard_limit, rate_per_second, burst,
           overage_unit_size, overage_unit_price, currency, anchor
      FROM (SELECT p_user AS user_id) x
      LEFT JOIN eco_subscriptions u ON u.user_id = x.user_id
      JOIN eco_plans p ON p.plan_id = coalesce(u.plan_id, 'free');

    interval_us := greatest(1, round(1000000::numeric / rate_per_second::numeric))::bigint;

    -- The monthly period anchored at anchor that holds n; timestamp +
    -- months clamps to the month's last day, as usage.PeriodAt does.
    k := (extract(year FROM n)::integer - extract(year FROM anchor)::integer) * 12
         + extract(month FROM n)::integer - extract(month FROM anchor)::integer;
    s := anchor + make_interval(months => k);
    WHILE s > n LOOP
        k := k - 1;
        s := anchor + make_interval(months => k);
    END LOOP;
    e := anchor + make_interval(months => k + 1);
    WHILE e <= n LOOP
        k := k + 1;
        s := e;
        e := anchor + make_interval(months => k + 1);
    END LOOP;
    period_start := s AT TIME ZONE 'UTC';
    period_end := e AT TIME ZONE 'UTC';

    SELECT greatest(coalesce(sum(c.calls), 0)::bigint, coalesce(p_known_used, 0))
      INTO used
      FROM eco_usage_counters c
     WHERE c.user_id = p_user AND c.day >= s::date AND c.day < e::date;

    IF included_calls > 0 AND p_thresholds IS NOT NULL THEN
        WITH crossed AS (
            INSERT INTO eco_usage_alerts (user_id, period_start, threshold, period_end, included_calls, used_calls, created_at)
            SELECT p_user, period_start, t, period_end, included_calls, used, p_now
              FROM unnest(p_thresholds) AS t
             WHERE used * 100 >= included_calls * t
             ORDER BY t
            ON CONFLICT DO NOTHING
            RETURNING threshold)
        SELECT array_agg(threshold ORDER BY threshold) INTO alerts FROM crossed;
    END IF;

    IF hard_limit AND used + p_cost > included_calls THEN
        took := false;
        allowed := false;
        remaining := 0;
        reset_us := 0;
        retry_us := 0;
        RETURN;
    END IF;
    took := true;
    SELECT g.allowed, g.remaining, g.reset_us, g.retry_us
      INTO allowed, remaining, reset_us, retry_us
      FROM rate_limit_take(p_key, now_us, interval_us, burst, p_cost) g;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION limit_check(uuid, text, timestamptz, bigint, bigint, integer[]);
DROP TABLE eco_usage_alerts;
DROP FUNCTION rate_limit_take(text, bigint, bigint, bigint, bigint);
DROP TABLE eco_rate_limits;

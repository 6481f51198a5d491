-- The limit check decides under terms computed in Go. The billing period
-- (usage.PeriodAt), the merge of a user's overrides into the plan
-- (usage.Plan.Apply) and the GCRA interval (usage.IntervalMicros) exist
-- once, in Go; limit_check no longer computes them again in plpgsql and
-- receives them as parameters instead.
--
-- A caller keeps a user's subscription in memory, so it must learn when the
-- subscription or its plan changes: every write of an eco_plans or
-- eco_subscriptions row takes a new version from one sequence (a trigger,
-- whoever writes), terms_version names the pair a user's terms come from,
-- and limit_check compares it with the version the caller decided under, in
-- the same round trip.

-- +goose Up
CREATE SEQUENCE eco_terms_version_seq;

ALTER TABLE eco_plans ADD COLUMN version bigint NOT NULL DEFAULT nextval('eco_terms_version_seq');
ALTER TABLE eco_subscriptions ADD COLUMN version bigint NOT NULL DEFAULT nextval('eco_terms_version_seq');

COMMENT ON COLUMN eco_plans.version IS
    'changes on every write of the row (eco_terms_version_seq); see terms_version';
COMMENT ON COLUMN eco_subscriptions.version IS
    'changes on every write of the row (eco_terms_version_seq); see terms_version';

-- +goose StatementBegin
CREATE FUNCTION bump_terms_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := nextval('eco_terms_version_seq');
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER eco_plans_version BEFORE UPDATE ON eco_plans
    FOR EACH ROW EXECUTE FUNCTION bump_terms_version();
CREATE TRIGGER eco_subscriptions_version BEFORE UPDATE ON eco_subscriptions
    FOR EACH ROW EXECUTE FUNCTION bump_terms_version();

-- terms_version is the version of a user's terms: of the plan row and of
-- the subscription row (NULL: none, the user is on free). Both parts are
-- kept, so that any change of either (a subscription created or removed
-- included) gives a version never seen before.
-- +goose StatementBegin
CREATE FUNCTION terms_version(p_plan bigint, p_subscription bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_plan::text || '.' || coalesce(p_subscription, 0)::text
$$;
-- +goose StatementEnd

DROP FUNCTION limit_check(uuid, text, timestamptz, bigint, bigint, integer[]);

-- limit_check is the request path's cold decision in one round trip. It
-- reads the version of p_user's terms; when it is not p_version, the terms
-- the caller computed are stale and it does nothing else (took false, used
-- NULL), returning the current version so that the caller reads the
-- subscription again. Otherwise: the calls used in the period
-- [p_period_start, p_period_end) from the live counters (never less than
-- p_known_used, what the caller already knows it admitted), the alert
-- thresholds of p_included newly crossed (claimed in eco_usage_alerts), and
-- one GCRA step on p_key for p_cost with emission interval p_interval and
-- burst p_burst. The GCRA step is skipped (took false) when p_hard and
-- used + cost exceeds p_included.
-- +goose StatementBegin
CREATE FUNCTION limit_check(p_user uuid, p_key text, p_now timestamptz, p_cost bigint,
    p_known_used bigint, p_thresholds integer[], p_period_start timestamptz, p_period_end timestamptz,
    p_included bigint, p_hard boolean, p_interval bigint, p_burst bigint, p_version text,
    OUT version text, OUT used bigint, OUT alerts integer[], OUT took boolean,
    OUT allowed boolean, OUT remaining bigint, OUT reset_us bigint, OUT retry_us bigint)
LANGUAGE plpgsql AS $$
BEGIN
    took := false;
    SELECT terms_version(p.version, s.version)
      INTO version
      FROM (SELECT p_user AS user_id) x
      LEFT JOIN eco_subscriptions s ON s.user_id = x.user_id
      JOIN eco_plans p ON p.plan_id = coalesce(s.plan_id, 'free');
    IF version IS DISTINCT FROM p_version THEN
        RETURN;
    END IF;

    SELECT greatest(coalesce(sum(c.calls), 0)::bigint, coalesce(p_known_used, 0))
      INTO used
      FROM eco_usage_counters c
     WHERE c.user_id = p_user
       AND c.day >= (p_period_start AT TIME ZONE 'UTC')::date
       AND c.day < (p_period_end AT TIME ZONE 'UTC')::date;

    IF p_included > 0 AND p_thresholds IS NOT NULL THEN
        WITH crossed AS (
            INSERT INTO eco_usage_alerts (user_id, period_start, threshold, period_end, included_calls, used_calls, created_at)
            SELECT p_user, p_period_start, t, p_period_end, p_included, used, p_now
              FROM unnest(p_thresholds) AS t
             WHERE used * 100 >= p_included * t
             ORDER BY t
            ON CONFLICT DO NOTHING
            RETURNING threshold)
        SELECT array_agg(threshold ORDER BY threshold) INTO alerts FROM crossed;
    END IF;

    IF p_hard AND used + p_cost > p_included THEN
        allowed := false;
        remaining := 0;
        reset_us := 0;
        retry_us := 0;
        RETURN;
    END IF;
    took := true;
    SELECT g.allowed, g.remaining, g.reset_us, g.retry_us
      INTO allowed, remaining, reset_us, retry_us
      FROM rate_limit_take(p_key, (extract(epoch FROM p_now) * 1000000)::bigint, p_interval, p_burst, p_cost) g;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION limit_check(uuid, text, timestamptz, bigint, bigint, integer[], timestamptz, timestamptz,
    bigint, boolean, bigint, bigint, text);

-- limit_check as 00004 defined it, exactly (copied from there).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION limit_check(p_user uuid, p_key text, p_now timestamptz, p_cost bigint,
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

DROP FUNCTION terms_version(bigint, bigint);
DROP TRIGGER eco_subscriptions_version ON eco_subscriptions;
DROP TRIGGER eco_plans_version ON eco_plans;
DROP FUNCTION bump_terms_version();
ALTER TABLE eco_subscriptions DROP COLUMN version;
ALTER TABLE eco_plans DROP COLUMN version;
DROP SEQUENCE eco_terms_version_seq;

-- migrations/schema.sql: the schema as it is after every migration of this
-- directory (00001_baseline.sql, which defines it part by part with the
-- reasons, and each one after it), in one file to read. It is generated,
-- never edited: change the schema with a new numbered migration, then run
-- make schema, which migrates a throwaway PostgreSQL 15 and dumps it here
-- (pg_dump --schema-only --no-owner --no-privileges, without pg_dump's
-- version lines and without the partitions of eco_api_usage and
-- eco_event_keys, which ensure_usage_partitions and
-- ensure_event_key_generations create as time passes). TestSchemaSQL
-- (shared/postgres) fails when it is stale. The migrations are what is
-- applied; this file is not applied.

--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: add_usage_user_months(date[], uuid[], bigint[], bigint[], bigint[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.add_usage_user_months(p_days date[], p_users uuid[], p_calls bigint[], p_e4 bigint[], p_e5 bigint[]) RETURNS void
    LANGUAGE sql
    AS $$
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


--
-- Name: aggregate_daily_usage(date, integer, integer, integer, uuid[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.aggregate_daily_usage(p_day date, p_part integer DEFAULT 0, p_parts integer DEFAULT 1, p_max_endpoints integer DEFAULT 1000, p_users uuid[] DEFAULT NULL::uuid[]) RETURNS bigint
    LANGUAGE plpgsql
    SET work_mem TO '64MB'
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
        -- The day's groups by user, endpoint and API key.
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
        -- Rows of the day without a row in r any more: their group has
        -- no raw events now (a NULL API key is a key of its own).
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


--
-- Name: bump_terms_version(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.bump_terms_version() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.version := nextval('eco_terms_version_seq');
    RETURN NEW;
END;
$$;


--
-- Name: eco_subscription_terms_cover(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.eco_subscription_terms_cover() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    uid uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
    s eco_subscriptions;
BEGIN
    SELECT * INTO s FROM eco_subscriptions WHERE user_id = uid;
    IF NOT FOUND OR EXISTS (SELECT 1 FROM eco_subscription_terms t
                             WHERE t.user_id = uid AND t.effective_from <= s.period_anchor) THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'eco_subscriptions' AND TG_OP = 'INSERT' THEN
        INSERT INTO eco_subscription_terms (user_id, effective_from, plan_id, overrides, change, requested_at, requested_by)
        VALUES (uid, s.period_anchor, s.plan_id,
                jsonb_strip_nulls(jsonb_build_object(
                    'included_calls', s.included_calls, 'hard_limit', s.hard_limit,
                    'rate_per_second', s.rate_per_second, 'burst', s.burst,
                    'overage_unit_size', s.overage_unit_size, 'overage_unit_price', s.overage_unit_price,
                    'currency', s.currency, 'price_model', s.price_model, 'tiers', s.price_tiers)),
                'start', s.created_at, 'database')
        ON CONFLICT (user_id, effective_from) DO NOTHING;
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the subscription of % would have no terms from its period anchor on, and its usage could not be billed', uid
        USING ERRCODE = 'check_violation';
END;
$$;


--
-- Name: FUNCTION eco_subscription_terms_cover(); Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON FUNCTION public.eco_subscription_terms_cover() IS 'at commit: gives a subscription inserted without terms its first entry, from its columns at its anchor; refuses to leave any other without terms from its anchor on';


--
-- Name: eco_subscriptions_whole_second(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.eco_subscriptions_whole_second() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.period_anchor := date_trunc('second', NEW.period_anchor, 'UTC');
    RETURN NEW;
END;
$$;


--
-- Name: FUNCTION eco_subscriptions_whole_second(); Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON FUNCTION public.eco_subscriptions_whole_second() IS 'keeps period anchors in whole seconds: Stripe keeps an invoice item''s period so, and a run finds an item''s ledger row by its period';


--
-- Name: eco_usage_counters_insert(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.eco_usage_counters_insert() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO eco_usage_counter_slots (user_id, day, slot, calls, errors_4xx, errors_5xx, request_bytes, response_bytes, updated_at)
    VALUES (NEW.user_id, NEW.day, 0, NEW.calls, NEW.errors_4xx, NEW.errors_5xx, NEW.request_bytes, NEW.response_bytes, NEW.updated_at);
    RETURN NEW;
END;
$$;


--
-- Name: eco_usage_daily_sync_both(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.eco_usage_daily_sync_both() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM refresh_usage_user_pairs(array_agg(day), array_agg(user_id))
    FROM (SELECT day, user_id FROM changed_old UNION SELECT day, user_id FROM changed_new) c;
    RETURN NULL;
END;
$$;


--
-- Name: eco_usage_daily_sync_new(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.eco_usage_daily_sync_new() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM refresh_usage_user_pairs(array_agg(day), array_agg(user_id)) FROM changed_new;
    RETURN NULL;
END;
$$;


--
-- Name: eco_usage_daily_sync_old(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.eco_usage_daily_sync_old() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM refresh_usage_user_pairs(array_agg(day), array_agg(user_id)) FROM changed_old;
    RETURN NULL;
END;
$$;


--
-- Name: ensure_event_key_generations(integer[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.ensure_event_key_generations(p_gens integer[]) RETURNS integer
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: ensure_usage_partitions(timestamp with time zone, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.ensure_usage_partitions(from_ts timestamp with time zone, months integer) RETURNS integer
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: increment_api_calls(uuid[], date[], bigint[], bigint[], bigint[], bigint[], bigint[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.increment_api_calls(p_user_ids uuid[], p_days date[], p_calls bigint[], p_errors_4xx bigint[], p_errors_5xx bigint[], p_request_bytes bigint[], p_response_bytes bigint[]) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: limit_check(uuid, text, timestamp with time zone, bigint, bigint, integer[], timestamp with time zone, timestamp with time zone, bigint, boolean, bigint, bigint, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.limit_check(p_user uuid, p_key text, p_now timestamp with time zone, p_cost bigint, p_known_used bigint, p_thresholds integer[], p_period_start timestamp with time zone, p_period_end timestamp with time zone, p_included bigint, p_hard boolean, p_interval bigint, p_burst bigint, p_version text, OUT version text, OUT used bigint, OUT alerts integer[], OUT took boolean, OUT allowed boolean, OUT remaining bigint, OUT reset_us bigint, OUT retry_us bigint) RETURNS record
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: notify_arm(uuid, date, date, timestamp with time zone, timestamp with time zone, bigint, bigint, uuid[], uuid[], text[], bigint[], text[], timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.notify_arm(p_user uuid, p_first_day date, p_end_day date, p_period_start timestamp with time zone, p_period_end timestamp with time zone, p_epoch bigint, p_user_version bigint, p_event_ids uuid[], p_rule_ids uuid[], p_types text[], p_calls bigint[], p_details text[], p_now timestamp with time zone) RETURNS uuid[]
    LANGUAGE plpgsql
    AS $$
DECLARE
    armed boolean;
BEGIN
    INSERT INTO eco_notify_periods AS p (user_id, first_day, end_day, period_start, period_end, epoch, user_version, armed_at)
    VALUES (p_user, p_first_day, p_end_day, p_period_start, p_period_end, p_epoch, p_user_version, p_now)
    ON CONFLICT (user_id, first_day) DO UPDATE
       SET end_day = excluded.end_day, period_start = excluded.period_start, period_end = excluded.period_end,
           epoch = excluded.epoch, user_version = excluded.user_version, armed_at = excluded.armed_at
     WHERE p.epoch <= excluded.epoch AND p.user_version <= excluded.user_version
    RETURNING true INTO armed;
    IF armed IS NULL THEN
        RETURN '{}'; -- armed under newer versions by another armer
    END IF;

    DELETE FROM eco_notify_thresholds t
     WHERE t.user_id = p_user AND t.first_day = p_first_day AND t.fired_at IS NULL
       AND t.rule_id <> ALL (coalesce(p_rule_ids, '{}'));

    INSERT INTO eco_notify_thresholds AS t (event_id, user_id, first_day, rule_id, event_type, calls, detail)
    SELECT e, p_user, p_first_day, r, ty, c, d::jsonb
      FROM unnest(p_event_ids, p_rule_ids, p_types, p_calls, p_details) AS x(e, r, ty, c, d)
     ORDER BY r
    ON CONFLICT (user_id, first_day, rule_id) DO UPDATE
       SET event_type = excluded.event_type, calls = excluded.calls, detail = excluded.detail
     WHERE t.fired_at IS NULL;

    UPDATE eco_notify_periods p
       SET next_calls = (SELECT min(t.calls) FROM eco_notify_thresholds t
                          WHERE t.user_id = p_user AND t.first_day = p_first_day AND t.fired_at IS NULL)
     WHERE p.user_id = p_user AND p.first_day = p_first_day;

    DELETE FROM eco_notify_pending q
     WHERE q.user_id = p_user AND q.day >= p_first_day AND q.day < p_end_day;

    RETURN notify_fire(ARRAY[p_user], ARRAY[p_first_day], p_now);
END;
$$;


--
-- Name: notify_bump(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.notify_bump() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    u uuid;
BEGIN
    IF TG_TABLE_NAME = 'eco_subscriptions' THEN
        u := CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
    ELSIF TG_TABLE_NAME = 'eco_notify_rules' THEN
        u := CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
        IF TG_OP = 'UPDATE' AND OLD.user_id IS DISTINCT FROM NEW.user_id THEN
            UPDATE eco_notify_epoch SET epoch = epoch + 1;
        END IF;
    END IF;
    IF u IS NULL THEN
        UPDATE eco_notify_epoch SET epoch = epoch + 1;
    ELSE
        INSERT INTO eco_notify_users AS n (user_id, version) VALUES (u, 1)
        ON CONFLICT (user_id) DO UPDATE SET version = n.version + 1;
    END IF;
    RETURN NULL;
END;
$$;


--
-- Name: notify_fire(uuid[], date[], timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.notify_fire(p_users uuid[], p_first_days date[], p_now timestamp with time zone) RETURNS uuid[]
    LANGUAGE plpgsql
    AS $$
DECLARE
    fired uuid[];
BEGIN
    PERFORM 1
       FROM eco_notify_periods p
       JOIN (SELECT DISTINCT u, fd FROM unnest(p_users, p_first_days) AS t(u, fd)) t
         ON p.user_id = t.u AND p.first_day = t.fd
      WHERE p.next_calls IS NOT NULL
      ORDER BY p.user_id, p.first_day
        FOR UPDATE OF p;
    IF NOT FOUND THEN
        RETURN '{}';
    END IF;

    WITH used AS (
        SELECT p.user_id, p.first_day,
               (SELECT coalesce(sum(c.calls), 0)::bigint FROM eco_usage_counter_slots c
                 WHERE c.user_id = p.user_id AND c.day >= p.first_day AND c.day < p.end_day) AS used
          FROM eco_notify_periods p
          JOIN (SELECT DISTINCT u, fd FROM unnest(p_users, p_first_days) AS t(u, fd)) t
            ON p.user_id = t.u AND p.first_day = t.fd
         WHERE p.next_calls IS NOT NULL
    ), crossed AS (
        SELECT * FROM used u
         WHERE u.used >= (SELECT p.next_calls FROM eco_notify_periods p WHERE p.user_id = u.user_id AND p.first_day = u.first_day)
    ), f AS (
        UPDATE eco_notify_thresholds t SET fired_at = p_now, used_calls = c.used
          FROM crossed c
         WHERE t.user_id = c.user_id AND t.first_day = c.first_day AND t.fired_at IS NULL AND t.calls <= c.used
        RETURNING t.event_id, t.user_id, t.event_type, t.detail, c.used
    ), o AS (
        INSERT INTO eco_notify_outbox (event_id, event_type, user_id, data, created_at)
        SELECT f.event_id, f.event_type, f.user_id,
               f.detail || jsonb_build_object('used_calls', f.used, 'crossed_at', p_now), p_now
          FROM f
         ORDER BY f.event_id
        ON CONFLICT (event_id) DO NOTHING
        RETURNING event_id
    ), n AS (
        UPDATE eco_notify_periods p
           SET next_calls = (SELECT min(t.calls) FROM eco_notify_thresholds t
                              WHERE t.user_id = c.user_id AND t.first_day = c.first_day
                                AND t.fired_at IS NULL AND t.calls > c.used)
          FROM crossed c
         WHERE p.user_id = c.user_id AND p.first_day = c.first_day
    )
    SELECT coalesce(array_agg(event_id ORDER BY event_id), '{}') INTO fired FROM o;
    RETURN fired;
END;
$$;


--
-- Name: promote_due_terms(timestamp with time zone, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.promote_due_terms(p_now timestamp with time zone, p_user uuid DEFAULT NULL::uuid) RETURNS integer
    LANGUAGE sql
    AS $$
    WITH up AS (
        UPDATE eco_subscriptions s
           SET plan_id = s.next_plan_id,
               included_calls = (s.next_overrides->>'included_calls')::bigint,
               hard_limit = (s.next_overrides->>'hard_limit')::boolean,
               rate_per_second = (s.next_overrides->>'rate_per_second')::double precision,
               burst = (s.next_overrides->>'burst')::integer,
               overage_unit_size = (s.next_overrides->>'overage_unit_size')::bigint,
               overage_unit_price = (s.next_overrides->>'overage_unit_price')::bigint,
               currency = s.next_overrides->>'currency',
               price_model = s.next_overrides->>'price_model',
               price_tiers = s.next_overrides->'tiers',
               next_plan_id = NULL, next_overrides = NULL, next_from = NULL,
               updated_at = p_now
         WHERE s.next_from <= p_now AND (p_user IS NULL OR s.user_id = p_user)
        RETURNING 1)
    SELECT count(*)::integer FROM up
$$;


--
-- Name: rate_limit_rescale(bigint, bigint, bigint, bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.rate_limit_rescale(p_tat bigint, p_tolerance bigint, p_now bigint, p_new bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE
        WHEN p_tat <= p_now OR p_tolerance = p_new THEN p_tat
        WHEN p_tolerance IS NULL OR p_tolerance <= 0 THEN least(p_tat, p_now + p_new)
        ELSE p_now + div(least(p_tat - p_now, p_tolerance)::numeric * p_new, p_tolerance)::bigint
    END
$$;


--
-- Name: rate_limit_take(text, bigint, bigint, bigint, bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.rate_limit_take(p_key text, p_now bigint, p_interval bigint, p_burst bigint, p_cost bigint, OUT allowed boolean, OUT remaining bigint, OUT reset_us bigint, OUT retry_us bigint) RETURNS record
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO eco_rate_limits AS r (key, tat, allowed, tolerance)
    VALUES (p_key,
            CASE WHEN p_cost <= p_burst THEN p_now + p_interval * p_cost ELSE p_now END,
            p_cost <= p_burst, p_interval * p_burst)
    ON CONFLICT (key) DO UPDATE SET
        tat = CASE WHEN greatest(rate_limit_rescale(r.tat, r.tolerance, p_now, p_interval * p_burst), p_now)
                            + p_interval * (p_cost - p_burst) <= p_now
                   THEN greatest(rate_limit_rescale(r.tat, r.tolerance, p_now, p_interval * p_burst), p_now) + p_interval * p_cost
                   ELSE rate_limit_rescale(r.tat, r.tolerance, p_now, p_interval * p_burst) END,
        allowed = greatest(rate_limit_rescale(r.tat, r.tolerance, p_now, p_interval * p_burst), p_now)
                      + p_interval * (p_cost - p_burst) <= p_now,
        tolerance = p_interval * p_burst
    RETURNING
        r.allowed,
        CASE WHEN r.allowed THEN (p_now - r.tat + p_interval * p_burst) / p_interval ELSE 0 END,
        CASE WHEN r.allowed THEN r.tat - p_now ELSE greatest(r.tat, p_now) - p_now END,
        CASE WHEN r.allowed THEN 0 ELSE greatest(r.tat, p_now) + p_interval * (p_cost - p_burst) - p_now END
    INTO allowed, remaining, reset_us, retry_us;
END;
$$;


--
-- Name: rebuild_usage_user_months(date, date); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.rebuild_usage_user_months(p_from date, p_to date) RETURNS void
    LANGUAGE sql
    AS $$
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


--
-- Name: record_usage_counts(uuid[], date[], bigint[], bigint[], bigint[], bigint[], bigint[], timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.record_usage_counts(p_user_ids uuid[], p_days date[], p_calls bigint[], p_errors_4xx bigint[], p_errors_5xx bigint[], p_request_bytes bigint[], p_response_bytes bigint[], p_now timestamp with time zone, OUT calls bigint, OUT fired uuid[], OUT pending integer) RETURNS record
    LANGUAGE plpgsql
    AS $$
DECLARE
    g      bigint;
    open_u uuid[];
    open_d date[];
BEGIN
    calls := increment_api_calls(p_user_ids, p_days, p_calls, p_errors_4xx, p_errors_5xx, p_request_bytes, p_response_bytes);
    fired := '{}';
    pending := 0;
    IF p_user_ids IS NULL OR cardinality(p_user_ids) = 0 THEN
        RETURN;
    END IF;
    SELECT epoch INTO g FROM eco_notify_epoch;

    WITH pairs AS (
        SELECT DISTINCT u, dy FROM unnest(p_user_ids, p_days) AS t(u, dy)
    ), m AS (
        SELECT pr.u, pr.dy, a.first_day, a.next_calls,
               a.first_day IS NOT NULL AND pr.dy < a.end_day AND a.epoch = g
               AND a.user_version = coalesce((SELECT nu.version FROM eco_notify_users nu WHERE nu.user_id = pr.u), 0) AS armed
          FROM pairs pr
          LEFT JOIN LATERAL (SELECT p.first_day, p.end_day, p.epoch, p.user_version, p.next_calls
                               FROM eco_notify_periods p
                              WHERE p.user_id = pr.u AND p.first_day <= pr.dy
                              ORDER BY p.first_day DESC LIMIT 1) a ON true
    ), marked AS (
        INSERT INTO eco_notify_pending AS x (user_id, day, marked_at)
        SELECT m.u, m.dy, p_now FROM m
         WHERE NOT m.armed
           AND NOT EXISTS (SELECT 1 FROM eco_notify_pending q WHERE q.user_id = m.u AND q.day = m.dy)
         ORDER BY 1, 2
        ON CONFLICT (user_id, day) DO NOTHING
    )
    SELECT (count(*) FILTER (WHERE NOT m.armed))::integer,
           array_agg(m.u ORDER BY m.u, m.first_day) FILTER (WHERE m.armed AND m.next_calls IS NOT NULL),
           array_agg(m.first_day ORDER BY m.u, m.first_day) FILTER (WHERE m.armed AND m.next_calls IS NOT NULL)
      INTO pending, open_u, open_d
      FROM m;

    IF open_u IS NOT NULL THEN
        fired := notify_fire(open_u, open_d, p_now);
    END IF;
END;
$$;


--
-- Name: refresh_usage_user_daily(date, date); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.refresh_usage_user_daily(p_from date, p_to date) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: refresh_usage_user_pairs(date[], uuid[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.refresh_usage_user_pairs(p_days date[], p_users uuid[]) RETURNS void
    LANGUAGE sql
    AS $$
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


--
-- Name: terms_version(bigint, bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.terms_version(p_plan bigint, p_subscription bigint) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT p_plan::text || '.' || coalesce(p_subscription, 0)::text
$$;


--
-- Name: usage_array_add(bigint[], bigint[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.usage_array_add(a bigint[], b bigint[]) RETURNS bigint[]
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT ARRAY(SELECT x + y FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i) ORDER BY i);
$$;


--
-- Name: usage_month_add(bigint[], integer[], bigint[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.usage_month_add(a bigint[], p_days integer[], p_values bigint[]) RETURNS bigint[]
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE WHEN cardinality(p_days) = 1 AND a[cardinality(a)] = a[p_days[1]]
        THEN a[1:p_days[1] - 1] || array_fill(a[p_days[1]] + p_values[1], ARRAY[cardinality(a) - p_days[1] + 1])
        ELSE usage_array_add(a, usage_month_steps(cardinality(a), p_days, p_values))
    END;
$$;


--
-- Name: usage_month_steps(integer, integer[], bigint[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.usage_month_steps(p_len integer, p_days integer[], p_values bigint[]) RETURNS bigint[]
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE WHEN cardinality(p_days) = 1
        THEN array_fill(0::bigint, ARRAY[p_days[1] - 1]) || array_fill(p_values[1], ARRAY[p_len - p_days[1] + 1])
        ELSE ARRAY(
            SELECT coalesce(sum(v) FILTER (WHERE d <= i), 0)::bigint
            FROM generate_series(1, p_len) AS i CROSS JOIN unnest(p_days, p_values) AS u(d, v)
            GROUP BY i ORDER BY i)
    END;
$$;


--
-- Name: valid_price_tiers(jsonb); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.valid_price_tiers(t jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT t IS NULL OR (
        jsonb_typeof(t) = 'array'
        AND jsonb_array_length(t) BETWEEN 1 AND 20
        AND NOT EXISTS (
            SELECT 1
              FROM (SELECT e.v, e.i,
                           CASE WHEN jsonb_typeof(e.v->'up_to') = 'number' THEN (e.v->>'up_to')::numeric END AS up_to,
                           lag(CASE WHEN jsonb_typeof(e.v->'up_to') = 'number' THEN (e.v->>'up_to')::numeric END)
                               OVER (ORDER BY e.i) AS prev
                      FROM jsonb_array_elements(t) WITH ORDINALITY AS e(v, i)) x
             WHERE jsonb_typeof(x.v) <> 'object'
                OR CASE WHEN jsonb_typeof(x.v->'unit_price') = 'number' THEN (x.v->>'unit_price')::numeric < 0 ELSE true END
                OR CASE WHEN x.v ? 'flat_price'
                        THEN CASE WHEN jsonb_typeof(x.v->'flat_price') = 'number' THEN (x.v->>'flat_price')::numeric < 0 ELSE true END
                        ELSE false END
                -- every tier but the last has a bound, rising; the last has none
                OR (x.i < jsonb_array_length(t)) <> (x.up_to IS NOT NULL)
                OR x.up_to <= coalesce(x.prev, 0)))
$$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: eco_api_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_api_keys (
    api_key_id uuid NOT NULL,
    user_id uuid NOT NULL,
    name text DEFAULT ''::text NOT NULL,
    prefix text NOT NULL,
    key_hash bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone,
    CONSTRAINT eco_api_keys_key_hash_check CHECK ((length(key_hash) = 32))
);


--
-- Name: eco_api_usage; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_api_usage (
    event_id uuid NOT NULL,
    user_id uuid NOT NULL,
    api_key_id uuid,
    endpoint text NOT NULL,
    method text NOT NULL,
    status_code smallint NOT NULL,
    latency_ms integer NOT NULL,
    request_bytes bigint NOT NULL,
    response_bytes bigint NOT NULL,
    quantity integer DEFAULT 1 NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL
)
PARTITION BY RANGE (occurred_at);


--
-- Name: eco_event_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_event_keys (
    gen integer NOT NULL,
    event_id uuid NOT NULL
)
PARTITION BY LIST (gen);


--
-- Name: TABLE eco_event_keys; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.eco_event_keys IS 'event ids recorded, by generation of receipt (usage.KeyGeneration); the dedupe key of the record path';


--
-- Name: eco_job_locks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_job_locks (
    job text NOT NULL,
    holder text NOT NULL,
    acquired_at timestamp with time zone NOT NULL,
    locked_until timestamp with time zone NOT NULL
);


--
-- Name: eco_job_runs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_job_runs (
    run_id bigint NOT NULL,
    job text NOT NULL,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone,
    outcome text DEFAULT 'running'::text NOT NULL,
    days_recomputed integer DEFAULT 0 NOT NULL,
    rows_written bigint DEFAULT 0 NOT NULL,
    detail jsonb DEFAULT '{}'::jsonb NOT NULL,
    error text,
    CONSTRAINT eco_job_runs_outcome_check CHECK ((outcome = ANY (ARRAY['running'::text, 'succeeded'::text, 'failed'::text, 'skipped'::text])))
);


--
-- Name: eco_job_runs_run_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.eco_job_runs ALTER COLUMN run_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.eco_job_runs_run_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: eco_notify_epoch; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_notify_epoch (
    epoch bigint NOT NULL
);


--
-- Name: eco_notify_outbox; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_notify_outbox (
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    user_id uuid,
    data jsonb NOT NULL,
    created_at timestamp with time zone NOT NULL,
    fanned_out_at timestamp with time zone,
    published_at timestamp with time zone,
    CONSTRAINT eco_notify_outbox_data_check CHECK ((jsonb_typeof(data) = 'object'::text))
);


--
-- Name: eco_notify_pending; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_notify_pending (
    user_id uuid NOT NULL,
    day date NOT NULL,
    marked_at timestamp with time zone NOT NULL
);


--
-- Name: TABLE eco_notify_pending; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.eco_notify_pending IS 'days of users whose usage moved while their period was not armed under the current versions: the armer''s work, written with the counters';


--
-- Name: eco_notify_periods; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_notify_periods (
    user_id uuid NOT NULL,
    first_day date NOT NULL,
    end_day date NOT NULL,
    period_start timestamp with time zone NOT NULL,
    period_end timestamp with time zone NOT NULL,
    epoch bigint NOT NULL,
    user_version bigint NOT NULL,
    next_calls bigint,
    armed_at timestamp with time zone NOT NULL,
    CONSTRAINT eco_notify_periods_check CHECK ((end_day > first_day))
);


--
-- Name: TABLE eco_notify_periods; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.eco_notify_periods IS 'a user''s billing period armed with its thresholds (eco_notify_thresholds) under the epoch and user version it was computed from; next_calls is the lowest threshold not yet crossed';


--
-- Name: eco_notify_rules; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_notify_rules (
    rule_id uuid NOT NULL,
    plan_id text,
    user_id uuid,
    kind text NOT NULL,
    value bigint NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    created_by text DEFAULT ''::text NOT NULL,
    CONSTRAINT eco_notify_rules_description_check CHECK ((length(description) <= 200)),
    CONSTRAINT eco_notify_rules_kind_check CHECK ((kind = ANY (ARRAY['percent'::text, 'calls'::text, 'overage'::text, 'quota'::text]))),
    CONSTRAINT eco_notify_rules_owner CHECK (((plan_id IS NULL) <> (user_id IS NULL))),
    CONSTRAINT eco_notify_rules_value CHECK (((kind = 'quota'::text) = (value = 0))),
    CONSTRAINT eco_notify_rules_value_check CHECK ((value >= 0))
);


--
-- Name: TABLE eco_notify_rules; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.eco_notify_rules IS 'threshold rules of a plan (its users'' defaults) or of one user: percent of included calls, calls, overage to date (minor units), hard quota reached';


--
-- Name: eco_notify_thresholds; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_notify_thresholds (
    event_id uuid NOT NULL,
    user_id uuid NOT NULL,
    first_day date NOT NULL,
    rule_id uuid NOT NULL,
    event_type text NOT NULL,
    calls bigint NOT NULL,
    detail jsonb NOT NULL,
    fired_at timestamp with time zone,
    used_calls bigint,
    CONSTRAINT eco_notify_thresholds_calls_check CHECK ((calls >= 1)),
    CONSTRAINT eco_notify_thresholds_detail_check CHECK ((jsonb_typeof(detail) = 'object'::text))
);


--
-- Name: eco_notify_users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_notify_users (
    user_id uuid NOT NULL,
    version bigint NOT NULL
);


--
-- Name: eco_overage_audit; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_overage_audit (
    audit_id bigint NOT NULL,
    who text NOT NULL,
    at timestamp with time zone NOT NULL,
    ledger_id uuid NOT NULL,
    action text NOT NULL,
    old jsonb NOT NULL,
    new jsonb NOT NULL,
    CONSTRAINT eco_overage_audit_action_check CHECK ((action = 'retry'::text))
);


--
-- Name: eco_overage_audit_audit_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.eco_overage_audit ALTER COLUMN audit_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.eco_overage_audit_audit_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: eco_overage_ledger; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_overage_ledger (
    ledger_id uuid NOT NULL,
    user_id uuid NOT NULL,
    period_start timestamp with time zone NOT NULL,
    period_end timestamp with time zone NOT NULL,
    seq integer DEFAULT 0 NOT NULL,
    included_calls bigint NOT NULL,
    used_calls bigint NOT NULL,
    units bigint NOT NULL,
    unit_size bigint NOT NULL,
    unit_price bigint NOT NULL,
    amount bigint NOT NULL,
    currency text NOT NULL,
    idempotency_key text NOT NULL,
    status text NOT NULL,
    stripe_object_id text,
    attempts integer DEFAULT 0 NOT NULL,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    lease_owner text,
    lease_until timestamp with time zone,
    note text,
    lines jsonb,
    description text DEFAULT ''::text NOT NULL,
    sent_to text[] DEFAULT '{}'::text[] NOT NULL,
    retries integer DEFAULT 0 NOT NULL,
    CONSTRAINT eco_overage_ledger_lines_check CHECK ((jsonb_typeof(lines) = 'array'::text)),
    CONSTRAINT eco_overage_ledger_retries_check CHECK ((retries >= 0)),
    CONSTRAINT eco_overage_ledger_seq_check CHECK ((seq >= 0)),
    CONSTRAINT eco_overage_ledger_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'billed'::text, 'failed'::text, 'skipped'::text])))
)
WITH (fillfactor='50');


--
-- Name: COLUMN eco_overage_ledger.lease_owner; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_overage_ledger.lease_owner IS 'the billing run that last claimed the row; a run never claims a row twice';


--
-- Name: COLUMN eco_overage_ledger.lease_until; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_overage_ledger.lease_until IS 'other runs leave the row alone until then; NULL when not leased';


--
-- Name: COLUMN eco_overage_ledger.lines; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_overage_ledger.lines IS 'the period''s pricing as of this row: each part under one set of terms with its plan, price, included share, calls and amount (usage.Line); NULL on a row that priced the whole period as a package';


--
-- Name: COLUMN eco_overage_ledger.sent_to; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_overage_ledger.sent_to IS 'the Stripe customers the row was claimed for, first first: it is looked up under them before it is sent again';


--
-- Name: eco_overage_progress; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_overage_progress (
    user_id uuid NOT NULL,
    closed_through timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: eco_plan_audit; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_plan_audit (
    audit_id bigint NOT NULL,
    who text NOT NULL,
    at timestamp with time zone NOT NULL,
    user_id uuid NOT NULL,
    old jsonb,
    new jsonb NOT NULL,
    change text,
    effective_at timestamp with time zone,
    before jsonb,
    after jsonb,
    changed text[],
    CONSTRAINT eco_plan_audit_change_check CHECK ((change = ANY (ARRAY['start'::text, 'upgrade'::text, 'downgrade'::text, 'same'::text])))
);


--
-- Name: COLUMN eco_plan_audit.before; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_plan_audit.before IS 'the terms in force when the change was made (usage.Terms as JSON; null for a new subscription)';


--
-- Name: COLUMN eco_plan_audit.after; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_plan_audit.after IS 'the terms the change asked for, from effective_at (usage.Terms as JSON)';


--
-- Name: eco_plan_audit_audit_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.eco_plan_audit ALTER COLUMN audit_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.eco_plan_audit_audit_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: eco_terms_version_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.eco_terms_version_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: eco_plans; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_plans (
    plan_id text NOT NULL,
    name text NOT NULL,
    included_calls bigint NOT NULL,
    hard_limit boolean NOT NULL,
    rate_per_second double precision NOT NULL,
    burst integer NOT NULL,
    overage_unit_size bigint DEFAULT 1000 NOT NULL,
    overage_unit_price bigint DEFAULT 0 NOT NULL,
    currency text DEFAULT 'usd'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    version bigint DEFAULT nextval('public.eco_terms_version_seq'::regclass) NOT NULL,
    price_model text DEFAULT 'package'::text NOT NULL,
    price_tiers jsonb,
    CONSTRAINT eco_plans_burst_check CHECK ((burst > 0)),
    CONSTRAINT eco_plans_currency_check CHECK ((currency ~ '^[a-z]{3}$'::text)),
    CONSTRAINT eco_plans_included_calls_check CHECK ((included_calls >= 0)),
    CONSTRAINT eco_plans_overage_unit_price_check CHECK ((overage_unit_price >= 0)),
    CONSTRAINT eco_plans_overage_unit_size_check CHECK ((overage_unit_size > 0)),
    CONSTRAINT eco_plans_price_model_check CHECK ((price_model = ANY (ARRAY['per_unit'::text, 'package'::text, 'graduated'::text, 'volume'::text]))),
    CONSTRAINT eco_plans_price_tiers CHECK (((price_model = ANY (ARRAY['graduated'::text, 'volume'::text])) = (price_tiers IS NOT NULL))),
    CONSTRAINT eco_plans_price_tiers_check CHECK (public.valid_price_tiers(price_tiers)),
    CONSTRAINT eco_plans_rate_per_second_check CHECK ((rate_per_second > (0)::double precision))
);


--
-- Name: COLUMN eco_plans.overage_unit_price; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_plans.overage_unit_price IS 'price of one overage unit in the currency''s minor unit; 0 means the plan has no overage billing';


--
-- Name: COLUMN eco_plans.version; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_plans.version IS 'changes on every write of the row (eco_terms_version_seq); see terms_version';


--
-- Name: COLUMN eco_plans.price_model; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_plans.price_model IS 'how calls above the included ones are priced: per_unit (unit price per unit size calls, prorated), package (whole units of unit size calls), graduated or volume (price_tiers)';


--
-- Name: eco_rate_limits; Type: TABLE; Schema: public; Owner: -
--

CREATE UNLOGGED TABLE public.eco_rate_limits (
    key text NOT NULL,
    tat bigint NOT NULL,
    allowed boolean NOT NULL,
    tolerance bigint
)
WITH (fillfactor='70');


--
-- Name: COLUMN eco_rate_limits.tat; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_rate_limits.tat IS 'GCRA theoretical arrival time, microseconds since the Unix epoch';


--
-- Name: COLUMN eco_rate_limits.allowed; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_rate_limits.allowed IS 'the outcome of the last decision on the key (RETURNING cannot see the old row)';


--
-- Name: COLUMN eco_rate_limits.tolerance; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_rate_limits.tolerance IS 'the GCRA tolerance (interval * burst, microseconds) the tat was written under; NULL for keys written before it was kept';


--
-- Name: eco_record_slots; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_record_slots (
    slot smallint NOT NULL,
    CONSTRAINT eco_record_slots_slot_check CHECK ((slot >= 0))
);


--
-- Name: TABLE eco_record_slots; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.eco_record_slots IS 'record slots: a record transaction locks one (SKIP LOCKED) and writes counters and dirty marks in its rows only';


--
-- Name: eco_rejected_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_rejected_events (
    rejected_id bigint NOT NULL,
    source text NOT NULL,
    message_id text DEFAULT ''::text NOT NULL,
    event_id text DEFAULT ''::text NOT NULL,
    field text DEFAULT ''::text NOT NULL,
    reason text NOT NULL,
    body text NOT NULL,
    rejected_at timestamp with time zone DEFAULT now() NOT NULL,
    "position" integer
);


--
-- Name: COLUMN eco_rejected_events."position"; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_rejected_events."position" IS 'the event''s index in its message (0 for a one-event message or one refused whole); NULL before keys existed or without a message id';


--
-- Name: eco_rejected_events_rejected_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.eco_rejected_events ALTER COLUMN rejected_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.eco_rejected_events_rejected_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: eco_schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_schema_migrations (
    id integer NOT NULL,
    version_id bigint NOT NULL,
    is_applied boolean NOT NULL,
    tstamp timestamp without time zone DEFAULT now() NOT NULL
);


--
-- Name: eco_schema_migrations_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.eco_schema_migrations ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.eco_schema_migrations_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: eco_subscription_terms; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_subscription_terms (
    user_id uuid NOT NULL,
    effective_from timestamp with time zone NOT NULL,
    plan_id text NOT NULL,
    overrides jsonb DEFAULT '{}'::jsonb NOT NULL,
    change text NOT NULL,
    requested_at timestamp with time zone NOT NULL,
    requested_by text DEFAULT ''::text NOT NULL,
    CONSTRAINT eco_subscription_terms_change_check CHECK ((change = ANY (ARRAY['start'::text, 'upgrade'::text, 'downgrade'::text]))),
    CONSTRAINT eco_subscription_terms_overrides_check CHECK ((jsonb_typeof(overrides) = 'object'::text))
);


--
-- Name: TABLE eco_subscription_terms; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.eco_subscription_terms IS 'the terms of each subscription over time: each row is in force from effective_from until the next row''s';


--
-- Name: eco_subscriptions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_subscriptions (
    user_id uuid NOT NULL,
    plan_id text NOT NULL,
    included_calls bigint,
    hard_limit boolean,
    rate_per_second double precision,
    burst integer,
    overage_unit_size bigint,
    overage_unit_price bigint,
    currency text,
    stripe_customer_id text,
    stripe_subscription_id text,
    period_anchor timestamp with time zone NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    version bigint DEFAULT nextval('public.eco_terms_version_seq'::regclass) NOT NULL,
    price_model text,
    price_tiers jsonb,
    next_plan_id text,
    next_overrides jsonb,
    next_from timestamp with time zone,
    CONSTRAINT eco_subscriptions_burst_check CHECK ((burst > 0)),
    CONSTRAINT eco_subscriptions_currency_check CHECK ((currency ~ '^[a-z]{3}$'::text)),
    CONSTRAINT eco_subscriptions_included_calls_check CHECK ((included_calls >= 0)),
    CONSTRAINT eco_subscriptions_next CHECK ((((next_plan_id IS NULL) = (next_from IS NULL)) AND ((next_plan_id IS NULL) = (next_overrides IS NULL)))),
    CONSTRAINT eco_subscriptions_next_overrides_check CHECK ((jsonb_typeof(next_overrides) = 'object'::text)),
    CONSTRAINT eco_subscriptions_overage_unit_price_check CHECK ((overage_unit_price >= 0)),
    CONSTRAINT eco_subscriptions_overage_unit_size_check CHECK ((overage_unit_size > 0)),
    CONSTRAINT eco_subscriptions_price_model_check CHECK ((price_model = ANY (ARRAY['per_unit'::text, 'package'::text, 'graduated'::text, 'volume'::text]))),
    CONSTRAINT eco_subscriptions_price_tiers_check CHECK (public.valid_price_tiers(price_tiers)),
    CONSTRAINT eco_subscriptions_rate_per_second_check CHECK ((rate_per_second > (0)::double precision))
);


--
-- Name: COLUMN eco_subscriptions.version; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_subscriptions.version IS 'changes on every write of the row (eco_terms_version_seq); see terms_version';


--
-- Name: COLUMN eco_subscriptions.next_plan_id; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.eco_subscriptions.next_plan_id IS 'a downgrade waiting for the end of the running period (next_from), with its overrides (usage.Overrides as JSON)';


--
-- Name: eco_usage_aggregated_days; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_usage_aggregated_days (
    day date NOT NULL,
    aggregated_at timestamp with time zone NOT NULL
);


--
-- Name: eco_usage_alerts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_usage_alerts (
    user_id uuid NOT NULL,
    period_start timestamp with time zone NOT NULL,
    threshold integer NOT NULL,
    period_end timestamp with time zone NOT NULL,
    included_calls bigint NOT NULL,
    used_calls bigint NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT eco_usage_alerts_threshold_check CHECK ((threshold > 0))
);


--
-- Name: eco_usage_counter_slots; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_usage_counter_slots (
    user_id uuid NOT NULL,
    day date NOT NULL,
    calls bigint DEFAULT 0 NOT NULL,
    errors_4xx bigint DEFAULT 0 NOT NULL,
    errors_5xx bigint DEFAULT 0 NOT NULL,
    request_bytes bigint DEFAULT 0 NOT NULL,
    response_bytes bigint DEFAULT 0 NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    slot smallint DEFAULT 0 NOT NULL
)
WITH (fillfactor='50');


--
-- Name: eco_usage_counters; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.eco_usage_counters AS
 SELECT eco_usage_counter_slots.user_id,
    eco_usage_counter_slots.day,
    (sum(eco_usage_counter_slots.calls))::bigint AS calls,
    (sum(eco_usage_counter_slots.errors_4xx))::bigint AS errors_4xx,
    (sum(eco_usage_counter_slots.errors_5xx))::bigint AS errors_5xx,
    (LEAST(sum(eco_usage_counter_slots.request_bytes), ('9223372036854775807'::bigint)::numeric))::bigint AS request_bytes,
    (LEAST(sum(eco_usage_counter_slots.response_bytes), ('9223372036854775807'::bigint)::numeric))::bigint AS response_bytes,
    max(eco_usage_counter_slots.updated_at) AS updated_at
   FROM public.eco_usage_counter_slots
  GROUP BY eco_usage_counter_slots.user_id, eco_usage_counter_slots.day;


--
-- Name: eco_usage_daily; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_usage_daily (
    day date NOT NULL,
    user_id uuid NOT NULL,
    endpoint text NOT NULL,
    api_key_id uuid,
    calls bigint NOT NULL,
    errors_4xx bigint NOT NULL,
    errors_5xx bigint NOT NULL,
    request_bytes bigint NOT NULL,
    response_bytes bigint NOT NULL,
    latency_sum_ms bigint NOT NULL,
    latency_p50_ms integer NOT NULL,
    latency_p95_ms integer NOT NULL,
    latency_max_ms integer NOT NULL,
    events bigint NOT NULL,
    aggregated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: eco_usage_dirty_days; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_usage_dirty_days (
    day date NOT NULL,
    marked_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: eco_usage_dirty_user_days; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_usage_dirty_user_days (
    day date NOT NULL,
    user_id uuid NOT NULL,
    slot smallint NOT NULL,
    marked_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: eco_usage_dropped_months; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_usage_dropped_months (
    month date NOT NULL,
    dropped_at timestamp with time zone NOT NULL,
    CONSTRAINT eco_usage_dropped_months_month_check CHECK ((month = date_trunc('month'::text, (month)::timestamp with time zone)))
);


--
-- Name: eco_usage_user_daily; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_usage_user_daily (
    day date NOT NULL,
    user_id uuid NOT NULL,
    calls bigint NOT NULL,
    errors_4xx bigint NOT NULL,
    errors_5xx bigint NOT NULL,
    request_bytes bigint NOT NULL,
    response_bytes bigint NOT NULL,
    latency_p95_ms integer
);


--
-- Name: eco_usage_user_month_locks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_usage_user_month_locks (
    month date NOT NULL
);


--
-- Name: eco_usage_user_monthly; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_usage_user_monthly (
    month date NOT NULL,
    user_id uuid NOT NULL,
    calls bigint[] NOT NULL,
    errors_4xx bigint[] NOT NULL,
    errors_5xx bigint[] NOT NULL,
    CONSTRAINT eco_usage_user_monthly_month_check CHECK ((month = date_trunc('month'::text, (month)::timestamp with time zone)))
);


--
-- Name: eco_webhook_attempts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_webhook_attempts (
    delivery_id uuid NOT NULL,
    attempt integer NOT NULL,
    at timestamp with time zone NOT NULL,
    status_code integer,
    outcome text NOT NULL,
    answer text DEFAULT ''::text NOT NULL,
    latency_ms integer NOT NULL,
    replay boolean DEFAULT false NOT NULL,
    CONSTRAINT eco_webhook_attempts_attempt_check CHECK ((attempt >= 1)),
    CONSTRAINT eco_webhook_attempts_latency_ms_check CHECK ((latency_ms >= 0)),
    CONSTRAINT eco_webhook_attempts_outcome_check CHECK ((outcome = ANY (ARRAY['delivered'::text, 'failed'::text, 'refused'::text])))
);


--
-- Name: eco_webhook_deliveries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_webhook_deliveries (
    delivery_id uuid NOT NULL,
    event_id uuid NOT NULL,
    endpoint_id uuid NOT NULL,
    user_id uuid,
    status text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    retry_step integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone,
    leased_until timestamp with time zone,
    last_status integer,
    last_error text DEFAULT ''::text NOT NULL,
    replays integer DEFAULT 0 NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    delivered_at timestamp with time zone,
    CONSTRAINT eco_webhook_deliveries_attempts_check CHECK ((attempts >= 0)),
    CONSTRAINT eco_webhook_deliveries_replays_check CHECK ((replays >= 0)),
    CONSTRAINT eco_webhook_deliveries_retry_step_check CHECK ((retry_step >= 0)),
    CONSTRAINT eco_webhook_deliveries_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'delivered'::text, 'failed'::text])))
);


--
-- Name: eco_webhook_endpoints; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.eco_webhook_endpoints (
    endpoint_id uuid NOT NULL,
    user_id uuid,
    url text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    event_types text[] DEFAULT '{}'::text[] NOT NULL,
    secret text NOT NULL,
    previous_secret text,
    previous_expires_at timestamp with time zone,
    enabled boolean DEFAULT true NOT NULL,
    disabled_reason text DEFAULT ''::text NOT NULL,
    failing_since timestamp with time zone,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT eco_webhook_endpoints_description_check CHECK ((length(description) <= 200)),
    CONSTRAINT eco_webhook_endpoints_previous CHECK (((previous_secret IS NULL) = (previous_expires_at IS NULL))),
    CONSTRAINT eco_webhook_endpoints_url_check CHECK (((length(url) >= 1) AND (length(url) <= 2048)))
);


--
-- Name: TABLE eco_webhook_endpoints; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.eco_webhook_endpoints IS 'webhook endpoints: a user''s own (user_id) or the platform''s (user_id NULL: every user''s events); secrets sign Standard Webhooks, the previous one too until previous_expires_at';


--
-- Name: eco_usage_counters calls; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_counters ALTER COLUMN calls SET DEFAULT 0;


--
-- Name: eco_usage_counters errors_4xx; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_counters ALTER COLUMN errors_4xx SET DEFAULT 0;


--
-- Name: eco_usage_counters errors_5xx; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_counters ALTER COLUMN errors_5xx SET DEFAULT 0;


--
-- Name: eco_usage_counters request_bytes; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_counters ALTER COLUMN request_bytes SET DEFAULT 0;


--
-- Name: eco_usage_counters response_bytes; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_counters ALTER COLUMN response_bytes SET DEFAULT 0;


--
-- Name: eco_usage_counters updated_at; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_counters ALTER COLUMN updated_at SET DEFAULT now();


--
-- Name: eco_api_keys eco_api_keys_key_hash_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_api_keys
    ADD CONSTRAINT eco_api_keys_key_hash_key UNIQUE (key_hash);


--
-- Name: eco_api_keys eco_api_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_api_keys
    ADD CONSTRAINT eco_api_keys_pkey PRIMARY KEY (api_key_id);


--
-- Name: eco_event_keys eco_event_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_event_keys
    ADD CONSTRAINT eco_event_keys_pkey PRIMARY KEY (gen, event_id);


--
-- Name: eco_job_locks eco_job_locks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_job_locks
    ADD CONSTRAINT eco_job_locks_pkey PRIMARY KEY (job);


--
-- Name: eco_job_runs eco_job_runs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_job_runs
    ADD CONSTRAINT eco_job_runs_pkey PRIMARY KEY (run_id);


--
-- Name: eco_notify_outbox eco_notify_outbox_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_notify_outbox
    ADD CONSTRAINT eco_notify_outbox_pkey PRIMARY KEY (event_id);


--
-- Name: eco_notify_pending eco_notify_pending_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_notify_pending
    ADD CONSTRAINT eco_notify_pending_pkey PRIMARY KEY (user_id, day);


--
-- Name: eco_notify_periods eco_notify_periods_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_notify_periods
    ADD CONSTRAINT eco_notify_periods_pkey PRIMARY KEY (user_id, first_day);


--
-- Name: eco_notify_rules eco_notify_rules_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_notify_rules
    ADD CONSTRAINT eco_notify_rules_pkey PRIMARY KEY (rule_id);


--
-- Name: eco_notify_thresholds eco_notify_thresholds_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_notify_thresholds
    ADD CONSTRAINT eco_notify_thresholds_pkey PRIMARY KEY (event_id);


--
-- Name: eco_notify_thresholds eco_notify_thresholds_user_id_first_day_rule_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_notify_thresholds
    ADD CONSTRAINT eco_notify_thresholds_user_id_first_day_rule_id_key UNIQUE (user_id, first_day, rule_id);


--
-- Name: eco_notify_users eco_notify_users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_notify_users
    ADD CONSTRAINT eco_notify_users_pkey PRIMARY KEY (user_id);


--
-- Name: eco_overage_audit eco_overage_audit_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_overage_audit
    ADD CONSTRAINT eco_overage_audit_pkey PRIMARY KEY (audit_id);


--
-- Name: eco_overage_ledger eco_overage_ledger_idempotency_key_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_overage_ledger
    ADD CONSTRAINT eco_overage_ledger_idempotency_key_key UNIQUE (idempotency_key);


--
-- Name: eco_overage_ledger eco_overage_ledger_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_overage_ledger
    ADD CONSTRAINT eco_overage_ledger_pkey PRIMARY KEY (ledger_id);


--
-- Name: eco_overage_ledger eco_overage_ledger_user_id_period_start_seq_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_overage_ledger
    ADD CONSTRAINT eco_overage_ledger_user_id_period_start_seq_key UNIQUE (user_id, period_start, seq);


--
-- Name: eco_overage_progress eco_overage_progress_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_overage_progress
    ADD CONSTRAINT eco_overage_progress_pkey PRIMARY KEY (user_id);


--
-- Name: eco_plan_audit eco_plan_audit_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_plan_audit
    ADD CONSTRAINT eco_plan_audit_pkey PRIMARY KEY (audit_id);


--
-- Name: eco_plans eco_plans_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_plans
    ADD CONSTRAINT eco_plans_pkey PRIMARY KEY (plan_id);


--
-- Name: eco_rate_limits eco_rate_limits_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_rate_limits
    ADD CONSTRAINT eco_rate_limits_pkey PRIMARY KEY (key);


--
-- Name: eco_record_slots eco_record_slots_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_record_slots
    ADD CONSTRAINT eco_record_slots_pkey PRIMARY KEY (slot);


--
-- Name: eco_rejected_events eco_rejected_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_rejected_events
    ADD CONSTRAINT eco_rejected_events_pkey PRIMARY KEY (rejected_id);


--
-- Name: eco_schema_migrations eco_schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_schema_migrations
    ADD CONSTRAINT eco_schema_migrations_pkey PRIMARY KEY (id);


--
-- Name: eco_subscription_terms eco_subscription_terms_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_subscription_terms
    ADD CONSTRAINT eco_subscription_terms_pkey PRIMARY KEY (user_id, effective_from);


--
-- Name: eco_subscriptions eco_subscriptions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_subscriptions
    ADD CONSTRAINT eco_subscriptions_pkey PRIMARY KEY (user_id);


--
-- Name: eco_usage_aggregated_days eco_usage_aggregated_days_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_aggregated_days
    ADD CONSTRAINT eco_usage_aggregated_days_pkey PRIMARY KEY (day);


--
-- Name: eco_usage_alerts eco_usage_alerts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_alerts
    ADD CONSTRAINT eco_usage_alerts_pkey PRIMARY KEY (user_id, period_start, threshold);


--
-- Name: eco_usage_counter_slots eco_usage_counter_slots_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_counter_slots
    ADD CONSTRAINT eco_usage_counter_slots_pkey PRIMARY KEY (user_id, day, slot);


--
-- Name: eco_usage_daily eco_usage_daily_day_user_id_endpoint_api_key_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_daily
    ADD CONSTRAINT eco_usage_daily_day_user_id_endpoint_api_key_id_key UNIQUE NULLS NOT DISTINCT (day, user_id, endpoint, api_key_id);


--
-- Name: eco_usage_dirty_days eco_usage_dirty_days_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_dirty_days
    ADD CONSTRAINT eco_usage_dirty_days_pkey PRIMARY KEY (day);


--
-- Name: eco_usage_dirty_user_days eco_usage_dirty_user_days_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_dirty_user_days
    ADD CONSTRAINT eco_usage_dirty_user_days_pkey PRIMARY KEY (day, user_id, slot);


--
-- Name: eco_usage_dropped_months eco_usage_dropped_months_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_dropped_months
    ADD CONSTRAINT eco_usage_dropped_months_pkey PRIMARY KEY (month);


--
-- Name: eco_usage_user_daily eco_usage_user_daily_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_user_daily
    ADD CONSTRAINT eco_usage_user_daily_pkey PRIMARY KEY (day, user_id);


--
-- Name: eco_usage_user_month_locks eco_usage_user_month_locks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_user_month_locks
    ADD CONSTRAINT eco_usage_user_month_locks_pkey PRIMARY KEY (month);


--
-- Name: eco_usage_user_monthly eco_usage_user_monthly_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_usage_user_monthly
    ADD CONSTRAINT eco_usage_user_monthly_pkey PRIMARY KEY (month, user_id);


--
-- Name: eco_webhook_attempts eco_webhook_attempts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_webhook_attempts
    ADD CONSTRAINT eco_webhook_attempts_pkey PRIMARY KEY (delivery_id, attempt);


--
-- Name: eco_webhook_deliveries eco_webhook_deliveries_event_id_endpoint_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_webhook_deliveries
    ADD CONSTRAINT eco_webhook_deliveries_event_id_endpoint_id_key UNIQUE (event_id, endpoint_id);


--
-- Name: eco_webhook_deliveries eco_webhook_deliveries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_webhook_deliveries
    ADD CONSTRAINT eco_webhook_deliveries_pkey PRIMARY KEY (delivery_id);


--
-- Name: eco_webhook_endpoints eco_webhook_endpoints_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_webhook_endpoints
    ADD CONSTRAINT eco_webhook_endpoints_pkey PRIMARY KEY (endpoint_id);


--
-- Name: eco_api_keys_user_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_api_keys_user_idx ON public.eco_api_keys USING btree (user_id);


--
-- Name: eco_api_usage_occurred_brin; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_api_usage_occurred_brin ON ONLY public.eco_api_usage USING brin (occurred_at);


--
-- Name: eco_job_runs_job_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_job_runs_job_idx ON public.eco_job_runs USING btree (job, started_at DESC);


--
-- Name: eco_notify_outbox_user_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_notify_outbox_user_idx ON public.eco_notify_outbox USING btree (user_id, created_at);


--
-- Name: eco_notify_outbox_waiting_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_notify_outbox_waiting_idx ON public.eco_notify_outbox USING btree (created_at) WHERE ((fanned_out_at IS NULL) OR (published_at IS NULL));


--
-- Name: eco_notify_pending_marked_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_notify_pending_marked_idx ON public.eco_notify_pending USING btree (marked_at);


--
-- Name: eco_notify_periods_open_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_notify_periods_open_idx ON public.eco_notify_periods USING btree (armed_at) WHERE (next_calls IS NOT NULL);


--
-- Name: eco_notify_rules_plan_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX eco_notify_rules_plan_idx ON public.eco_notify_rules USING btree (plan_id, kind, value) WHERE (plan_id IS NOT NULL);


--
-- Name: eco_notify_rules_user_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX eco_notify_rules_user_idx ON public.eco_notify_rules USING btree (user_id, kind, value) WHERE (user_id IS NOT NULL);


--
-- Name: eco_overage_audit_ledger_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_overage_audit_ledger_idx ON public.eco_overage_audit USING btree (ledger_id, at);


--
-- Name: eco_overage_ledger_pending_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_overage_ledger_pending_idx ON public.eco_overage_ledger USING btree (created_at, ledger_id) WHERE (status = 'pending'::text);


--
-- Name: eco_overage_ledger_period_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_overage_ledger_period_idx ON public.eco_overage_ledger USING btree (period_start, user_id, seq);


--
-- Name: eco_plan_audit_user_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_plan_audit_user_idx ON public.eco_plan_audit USING btree (user_id, at DESC);


--
-- Name: eco_rejected_events_at_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_rejected_events_at_idx ON public.eco_rejected_events USING btree (rejected_at);


--
-- Name: eco_rejected_events_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX eco_rejected_events_key ON public.eco_rejected_events USING btree (source, message_id, "position") WHERE ("position" IS NOT NULL);


--
-- Name: eco_subscriptions_next_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_subscriptions_next_idx ON public.eco_subscriptions USING btree (next_from) WHERE (next_from IS NOT NULL);


--
-- Name: eco_subscriptions_plan_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_subscriptions_plan_idx ON public.eco_subscriptions USING btree (plan_id);


--
-- Name: eco_usage_counter_slots_day_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_usage_counter_slots_day_idx ON public.eco_usage_counter_slots USING btree (day);


--
-- Name: eco_usage_daily_user_day_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_usage_daily_user_day_idx ON public.eco_usage_daily USING btree (user_id, day);


--
-- Name: eco_usage_user_daily_user_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_usage_user_daily_user_idx ON public.eco_usage_user_daily USING btree (user_id, day) INCLUDE (calls, errors_4xx, errors_5xx);


--
-- Name: eco_webhook_deliveries_due_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_webhook_deliveries_due_idx ON public.eco_webhook_deliveries USING btree (next_attempt_at) WHERE (status = 'pending'::text);


--
-- Name: eco_webhook_deliveries_endpoint_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_webhook_deliveries_endpoint_idx ON public.eco_webhook_deliveries USING btree (endpoint_id, created_at);


--
-- Name: eco_webhook_endpoints_user_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX eco_webhook_endpoints_user_idx ON public.eco_webhook_endpoints USING btree (user_id);


--
-- Name: eco_notify_rules eco_notify_rules_bump; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER eco_notify_rules_bump AFTER INSERT OR DELETE OR UPDATE ON public.eco_notify_rules FOR EACH ROW EXECUTE FUNCTION public.notify_bump();


--
-- Name: eco_plans eco_plans_notify_bump; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER eco_plans_notify_bump AFTER INSERT OR DELETE OR UPDATE ON public.eco_plans FOR EACH ROW EXECUTE FUNCTION public.notify_bump();


--
-- Name: eco_plans eco_plans_version; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER eco_plans_version BEFORE UPDATE ON public.eco_plans FOR EACH ROW EXECUTE FUNCTION public.bump_terms_version();


--
-- Name: eco_subscription_terms eco_subscription_terms_cover; Type: TRIGGER; Schema: public; Owner: -
--

CREATE CONSTRAINT TRIGGER eco_subscription_terms_cover AFTER DELETE OR UPDATE OF user_id, effective_from ON public.eco_subscription_terms DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.eco_subscription_terms_cover();


--
-- Name: eco_subscriptions eco_subscriptions_notify_bump; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER eco_subscriptions_notify_bump AFTER INSERT OR DELETE OR UPDATE ON public.eco_subscriptions FOR EACH ROW EXECUTE FUNCTION public.notify_bump();


--
-- Name: eco_subscriptions eco_subscriptions_terms_cover; Type: TRIGGER; Schema: public; Owner: -
--

CREATE CONSTRAINT TRIGGER eco_subscriptions_terms_cover AFTER INSERT OR UPDATE OF period_anchor ON public.eco_subscriptions DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.eco_subscription_terms_cover();


--
-- Name: eco_subscriptions eco_subscriptions_version; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER eco_subscriptions_version BEFORE UPDATE ON public.eco_subscriptions FOR EACH ROW EXECUTE FUNCTION public.bump_terms_version();


--
-- Name: eco_subscriptions eco_subscriptions_whole_second; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER eco_subscriptions_whole_second BEFORE INSERT OR UPDATE OF period_anchor ON public.eco_subscriptions FOR EACH ROW EXECUTE FUNCTION public.eco_subscriptions_whole_second();


--
-- Name: eco_usage_counters eco_usage_counters_insert; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER eco_usage_counters_insert INSTEAD OF INSERT ON public.eco_usage_counters FOR EACH ROW EXECUTE FUNCTION public.eco_usage_counters_insert();


--
-- Name: eco_usage_daily eco_usage_daily_sync_delete; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER eco_usage_daily_sync_delete AFTER DELETE ON public.eco_usage_daily REFERENCING OLD TABLE AS changed_old FOR EACH STATEMENT EXECUTE FUNCTION public.eco_usage_daily_sync_old();


--
-- Name: eco_usage_daily eco_usage_daily_sync_insert; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER eco_usage_daily_sync_insert AFTER INSERT ON public.eco_usage_daily REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION public.eco_usage_daily_sync_new();


--
-- Name: eco_usage_daily eco_usage_daily_sync_update; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER eco_usage_daily_sync_update AFTER UPDATE ON public.eco_usage_daily REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION public.eco_usage_daily_sync_both();


--
-- Name: eco_notify_rules eco_notify_rules_plan_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_notify_rules
    ADD CONSTRAINT eco_notify_rules_plan_id_fkey FOREIGN KEY (plan_id) REFERENCES public.eco_plans(plan_id) ON DELETE CASCADE;


--
-- Name: eco_notify_thresholds eco_notify_thresholds_user_id_first_day_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_notify_thresholds
    ADD CONSTRAINT eco_notify_thresholds_user_id_first_day_fkey FOREIGN KEY (user_id, first_day) REFERENCES public.eco_notify_periods(user_id, first_day) ON DELETE CASCADE;


--
-- Name: eco_subscription_terms eco_subscription_terms_plan_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_subscription_terms
    ADD CONSTRAINT eco_subscription_terms_plan_id_fkey FOREIGN KEY (plan_id) REFERENCES public.eco_plans(plan_id);


--
-- Name: eco_subscriptions eco_subscriptions_next_plan_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_subscriptions
    ADD CONSTRAINT eco_subscriptions_next_plan_id_fkey FOREIGN KEY (next_plan_id) REFERENCES public.eco_plans(plan_id);


--
-- Name: eco_subscriptions eco_subscriptions_plan_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_subscriptions
    ADD CONSTRAINT eco_subscriptions_plan_id_fkey FOREIGN KEY (plan_id) REFERENCES public.eco_plans(plan_id);


--
-- Name: eco_webhook_attempts eco_webhook_attempts_delivery_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_webhook_attempts
    ADD CONSTRAINT eco_webhook_attempts_delivery_id_fkey FOREIGN KEY (delivery_id) REFERENCES public.eco_webhook_deliveries(delivery_id) ON DELETE CASCADE;


--
-- Name: eco_webhook_deliveries eco_webhook_deliveries_endpoint_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_webhook_deliveries
    ADD CONSTRAINT eco_webhook_deliveries_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES public.eco_webhook_endpoints(endpoint_id) ON DELETE CASCADE;


--
-- Name: eco_webhook_deliveries eco_webhook_deliveries_event_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.eco_webhook_deliveries
    ADD CONSTRAINT eco_webhook_deliveries_event_id_fkey FOREIGN KEY (event_id) REFERENCES public.eco_notify_outbox(event_id);


--
-- PostgreSQL database dump complete
--

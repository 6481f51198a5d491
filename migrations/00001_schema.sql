-- The whole schema of the metering system: plans and subscriptions, API keys,
-- the raw usage log (partitioned by month), live counters, daily rollups,
-- quarantined events, the overage ledger and job runs.
--
-- Days are UTC calendar days; money is in the currency's minor unit (cents).

-- +goose Up

CREATE TABLE eco_plans (
    plan_id                  text PRIMARY KEY,
    name                     text NOT NULL,
    included_calls           bigint NOT NULL CHECK (included_calls >= 0),
    hard_limit               boolean NOT NULL,
    rate_per_second          double precision NOT NULL CHECK (rate_per_second > 0),
    burst                    integer NOT NULL CHECK (burst > 0),
    overage_unit_size        bigint NOT NULL DEFAULT 1000 CHECK (overage_unit_size > 0),
    overage_unit_price       bigint NOT NULL DEFAULT 0 CHECK (overage_unit_price >= 0),
    currency                 text NOT NULL DEFAULT 'usd' CHECK (currency ~ '^[a-z]{3}$'),
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

COMMENT ON COLUMN eco_plans.overage_unit_price IS
    'price of one overage unit in the currency''s minor unit; 0 means the plan has no overage billing';

INSERT INTO eco_plans (plan_id, name, included_calls, hard_limit, rate_per_second, burst, overage_unit_size, overage_unit_price, currency) VALUES
    ('free',       'Free',       1000,     true,  2,   10,   1000, 0,  'usd'),
    ('pro',        'Pro',        100000,   false, 50,  100,  1000, 50, 'usd'),
    ('enterprise', 'Enterprise', 10000000, false, 500, 1000, 1000, 20, 'usd');

-- One row per user: the plan, per-user overrides (NULL = the plan's value),
-- the Stripe ids and the billing period anchor. A user without a row is on
-- the free plan with periods anchored at the start of the calendar month.
CREATE TABLE eco_subscriptions (
    user_id                  uuid PRIMARY KEY,
    plan_id                  text NOT NULL REFERENCES eco_plans (plan_id),
    included_calls           bigint CHECK (included_calls >= 0),
    hard_limit               boolean,
    rate_per_second          double precision CHECK (rate_per_second > 0),
    burst                    integer CHECK (burst > 0),
    overage_unit_size        bigint CHECK (overage_unit_size > 0),
    overage_unit_price       bigint CHECK (overage_unit_price >= 0),
    currency                 text CHECK (currency ~ '^[a-z]{3}$'),
    stripe_customer_id       text,
    stripe_subscription_id   text,
    period_anchor            timestamptz NOT NULL,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX eco_subscriptions_plan_idx ON eco_subscriptions (plan_id);

-- API keys are stored only as SHA-256 hashes of the whole key; the prefix is
-- the visible part shown in lists.
CREATE TABLE eco_api_keys (
    api_key_id               uuid PRIMARY KEY,
    user_id                  uuid NOT NULL,
    name                     text NOT NULL DEFAULT '',
    prefix                   text NOT NULL,
    key_hash                 bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at               timestamptz NOT NULL DEFAULT now(),
    revoked_at               timestamptz
);

CREATE INDEX eco_api_keys_user_idx ON eco_api_keys (user_id);

-- The raw event log. The primary key includes occurred_at because a
-- partitioned table's unique constraints must hold its partition key; an
-- event's occurred_at is fixed by its producer, so a redelivery carries the
-- same pair and is deduplicated.
CREATE TABLE eco_api_usage (
    event_id                 uuid NOT NULL,
    user_id                  uuid NOT NULL,
    api_key_id               uuid,
    endpoint                 text NOT NULL,
    method                   text NOT NULL,
    status_code              smallint NOT NULL,
    latency_ms               integer NOT NULL,
    request_bytes            bigint NOT NULL,
    response_bytes           bigint NOT NULL,
    quantity                 integer NOT NULL DEFAULT 1,
    occurred_at              timestamptz NOT NULL,
    received_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

CREATE INDEX eco_api_usage_occurred_brin ON eco_api_usage USING brin (occurred_at);

-- ensure_usage_partitions creates the monthly partitions of eco_api_usage
-- for the months from the one holding from_ts, count months in all. It is
-- safe to call concurrently and repeatedly.
-- +goose StatementBegin
CREATE FUNCTION ensure_usage_partitions(from_ts timestamptz, months integer)
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

-- The previous month too: events may be backfilled up to 35 days late.
SELECT ensure_usage_partitions(now() - interval '1 month', 4);

-- Live per-user, per-day counters, moved only by rows actually inserted
-- into eco_api_usage (see increment_api_calls).
CREATE TABLE eco_usage_counters (
    user_id                  uuid NOT NULL,
    day                      date NOT NULL,
    calls                    bigint NOT NULL DEFAULT 0,
    errors_4xx               bigint NOT NULL DEFAULT 0,
    errors_5xx               bigint NOT NULL DEFAULT 0,
    request_bytes            bigint NOT NULL DEFAULT 0,
    response_bytes           bigint NOT NULL DEFAULT 0,
    updated_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, day)
);

-- Days whose raw events changed since they were last aggregated.
CREATE TABLE eco_usage_dirty_days (
    day                      date PRIMARY KEY,
    marked_at                timestamptz NOT NULL DEFAULT now()
);

-- increment_api_calls adds the given per-user, per-day deltas to the live
-- counters and marks the days dirty for the rollup. The arrays are parallel;
-- rows are applied in (user_id, day) order so that concurrent batches lock
-- counter rows in the same order and cannot deadlock.
-- +goose StatementBegin
CREATE FUNCTION increment_api_calls(
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

-- The daily rollup per user, day, endpoint and API key (NULL: no key).
CREATE TABLE eco_usage_daily (
    day                      date NOT NULL,
    user_id                  uuid NOT NULL,
    endpoint                 text NOT NULL,
    api_key_id               uuid,
    calls                    bigint NOT NULL,
    errors_4xx               bigint NOT NULL,
    errors_5xx               bigint NOT NULL,
    request_bytes            bigint NOT NULL,
    response_bytes           bigint NOT NULL,
    latency_sum_ms           bigint NOT NULL,
    latency_p50_ms           integer NOT NULL,
    latency_p95_ms           integer NOT NULL,
    latency_max_ms           integer NOT NULL,
    events                   bigint NOT NULL,
    aggregated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (day, user_id, endpoint, api_key_id)
);

CREATE INDEX eco_usage_daily_user_day_idx ON eco_usage_daily (user_id, day);

-- Messages that could not be recorded, with the reason: nothing is dropped.
CREATE TABLE eco_rejected_events (
    rejected_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source                   text NOT NULL,
    message_id               text NOT NULL DEFAULT '',
    event_id                 text NOT NULL DEFAULT '',
    field                    text NOT NULL DEFAULT '',
    reason                   text NOT NULL,
    body                     text NOT NULL,
    rejected_at              timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX eco_rejected_events_at_idx ON eco_rejected_events (rejected_at);

-- One row per user and billing period (seq 0), plus one per later
-- adjustment (seq 1, 2, ...). The idempotency key is derived from
-- (user, period, seq) and sent with the Stripe request.
CREATE TABLE eco_overage_ledger (
    ledger_id                uuid PRIMARY KEY,
    user_id                  uuid NOT NULL,
    period_start             timestamptz NOT NULL,
    period_end               timestamptz NOT NULL,
    seq                      integer NOT NULL DEFAULT 0 CHECK (seq >= 0),
    included_calls           bigint NOT NULL,
    used_calls               bigint NOT NULL,
    units                    bigint NOT NULL,
    unit_size                bigint NOT NULL,
    unit_price               bigint NOT NULL,
    amount                   bigint NOT NULL,
    currency                 text NOT NULL,
    idempotency_key          text NOT NULL UNIQUE,
    status                   text NOT NULL CHECK (status IN ('pending', 'billed', 'failed', 'skipped', 'dry_run')),
    stripe_object_id         text,
    attempts                 integer NOT NULL DEFAULT 0,
    last_error               text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, period_start, seq)
);

CREATE INDEX eco_overage_ledger_status_idx ON eco_overage_ledger (status) WHERE status = 'pending';

-- What each scheduled run did.
CREATE TABLE eco_job_runs (
    run_id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job                      text NOT NULL,
    started_at               timestamptz NOT NULL,
    finished_at              timestamptz,
    outcome                  text NOT NULL DEFAULT 'running' CHECK (outcome IN ('running', 'succeeded', 'failed', 'skipped')),
    days_recomputed          integer NOT NULL DEFAULT 0,
    rows_written             bigint NOT NULL DEFAULT 0,
    detail                   jsonb NOT NULL DEFAULT '{}',
    error                    text
);

CREATE INDEX eco_job_runs_job_idx ON eco_job_runs (job, started_at DESC);

-- +goose Down
DROP TABLE eco_job_runs;
DROP TABLE eco_overage_ledger;
DROP TABLE eco_rejected_events;
DROP TABLE eco_usage_daily;
DROP FUNCTION increment_api_calls(uuid[], date[], bigint[], bigint[], bigint[], bigint[], bigint[]);
DROP TABLE eco_usage_dirty_days;
DROP TABLE eco_usage_counters;
DROP FUNCTION ensure_usage_partitions(timestamptz, integer);
DROP TABLE eco_api_usage;
DROP TABLE eco_api_keys;
DROP TABLE eco_subscriptions;
DROP TABLE eco_plans;

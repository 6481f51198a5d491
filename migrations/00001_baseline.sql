-- The baseline: the whole schema of the metering system, grouped by
-- workflow, each group opening with how it works. Every table, index and
-- function is defined here once, as it is; a later migration holds only
-- what it changes, and its Down restores what it changed.
--
--   1. Plans, subscriptions and API keys
--   2. Recording: the raw event log, the event key store, quarantine
--   3. Live counters and dirty marks
--   4. Limits: rate limiting and the limit check
--   5. The daily rollup and the scheduled jobs
--   6. Summaries for the reports
--   7. Overage billing
--   8. Notifications
--
-- Days are UTC calendar days; money is in the currency's minor unit (cents).
-- migrations/schema.sql is the same schema as pg_dump writes it (make
-- schema).

-- +goose Up

-- =====================================================================
-- 1. Plans, subscriptions and API keys
-- =====================================================================
--
-- Plans (free, pro, enterprise) carry the included monthly calls, a hard
-- or soft limit, the rate (per second) and burst, and the price of the
-- calls above the included ones. A subscription is one row per user: the
-- plan, per-user overrides (NULL = the plan's value), the Stripe ids and
-- the billing period anchor. A user without a row is on the free plan with
-- periods anchored at the start of the calendar month.
--
-- Price models: a plan (and a user's overrides) prices the calls above its
-- included calls per unit, by package (units of N calls rounded up), or by
-- graduated or volume tiers (usage.Price). The tiers are a JSON array of
-- {"up_to": n | null, "unit_price": n, "flat_price": n}, the shape
-- usage.Tier marshals to; valid_price_tiers checks it on every write (the
-- Go code checks the bounds as well, Price.Validate).
--
-- Terms history: eco_subscription_terms holds every set of terms a
-- subscription had, has, or will have, each from an instant on. An upgrade
-- adds an entry from the instant it was made; a downgrade an entry from the
-- end of the running period, mirrored in eco_subscriptions.next_* until it
-- takes over (promote_due_terms copies it into the current columns). The
-- overage job prices each part of a period under the entry in force then.
--
-- Every subscription is billable (docs/overage.md, "Invariants"): it has
-- terms from its period anchor on. A row inserted without them (by SQL,
-- migrated from another system) gets its first entry from its own columns
-- at its anchor, at commit (a transaction that inserts both keeps its
-- own); a transaction that would leave a subscription without terms from
-- its anchor on (its terms deleted, its anchor moved before them) is
-- refused at commit.
--
-- Versions: the limit check (4.) decides under terms computed in Go, and a
-- caller keeps a user's subscription in memory, so it must learn when the
-- subscription or its plan changes: every write of an eco_plans or
-- eco_subscriptions row takes a new version from one sequence (a trigger,
-- whoever writes), terms_version names the pair a user's terms come from,
-- and limit_check compares it with the version the caller decided under,
-- in the same round trip.

CREATE SEQUENCE eco_terms_version_seq;

-- +goose StatementBegin
CREATE FUNCTION valid_price_tiers(t jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
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
-- +goose StatementEnd

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
    updated_at               timestamptz NOT NULL DEFAULT now(),
    version                  bigint NOT NULL DEFAULT nextval('eco_terms_version_seq'),
    price_model              text NOT NULL DEFAULT 'package'
                             CHECK (price_model IN ('per_unit', 'package', 'graduated', 'volume')),
    price_tiers              jsonb CHECK (valid_price_tiers(price_tiers)),
    CONSTRAINT eco_plans_price_tiers CHECK ((price_model IN ('graduated', 'volume')) = (price_tiers IS NOT NULL))
);

COMMENT ON COLUMN eco_plans.overage_unit_price IS
    'price of one overage unit in the currency''s minor unit; 0 means the plan has no overage billing';
COMMENT ON COLUMN eco_plans.version IS
    'changes on every write of the row (eco_terms_version_seq); see terms_version';
COMMENT ON COLUMN eco_plans.price_model IS
    'how calls above the included ones are priced: per_unit (unit price per unit size calls, prorated), package (whole units of unit size calls), graduated or volume (price_tiers)';

INSERT INTO eco_plans (plan_id, name, included_calls, hard_limit, rate_per_second, burst, overage_unit_size, overage_unit_price, currency) VALUES
    ('free',       'Free',       1000,     true,  2,   10,   1000, 0,  'usd'),
    ('pro',        'Pro',        100000,   false, 50,  100,  1000, 50, 'usd'),
    ('enterprise', 'Enterprise', 10000000, false, 500, 1000, 1000, 20, 'usd');

-- The overrides of the price (price_model, price_tiers) are NULL to keep
-- the plan's; whether a model and its tiers go together is checked against
-- the plan, in Go. A downgrade waits in next_* for the end of the running
-- period.
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
    updated_at               timestamptz NOT NULL DEFAULT now(),
    version                  bigint NOT NULL DEFAULT nextval('eco_terms_version_seq'),
    price_model              text CHECK (price_model IN ('per_unit', 'package', 'graduated', 'volume')),
    price_tiers              jsonb CHECK (valid_price_tiers(price_tiers)),
    next_plan_id             text REFERENCES eco_plans (plan_id),
    next_overrides           jsonb CHECK (jsonb_typeof(next_overrides) = 'object'),
    next_from                timestamptz,
    CONSTRAINT eco_subscriptions_next CHECK (
        (next_plan_id IS NULL) = (next_from IS NULL) AND (next_plan_id IS NULL) = (next_overrides IS NULL))
);

COMMENT ON COLUMN eco_subscriptions.version IS
    'changes on every write of the row (eco_terms_version_seq); see terms_version';
COMMENT ON COLUMN eco_subscriptions.next_plan_id IS
    'a downgrade waiting for the end of the running period (next_from), with its overrides (usage.Overrides as JSON)';

CREATE INDEX eco_subscriptions_plan_idx ON eco_subscriptions (plan_id);
CREATE INDEX eco_subscriptions_next_idx ON eco_subscriptions (next_from) WHERE next_from IS NOT NULL;

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

CREATE TABLE eco_subscription_terms (
    user_id                  uuid NOT NULL,
    effective_from           timestamptz NOT NULL,
    plan_id                  text NOT NULL REFERENCES eco_plans (plan_id),
    overrides                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(overrides) = 'object'),
    change                   text NOT NULL CHECK (change IN ('start', 'upgrade', 'downgrade')),
    requested_at             timestamptz NOT NULL,
    requested_by             text NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, effective_from)
);

COMMENT ON TABLE eco_subscription_terms IS
    'the terms of each subscription over time: each row is in force from effective_from until the next row''s';

-- promote_due_terms makes the downgrades whose time has come (next_from at
-- or before p_now; of p_user only when given) the subscriptions' current
-- terms. Readers in Go pick the terms in force themselves
-- (usage.Subscription.At), so this only keeps the columns that SQL reads
-- (plan_id) current; the overage job and plan changes call it.
-- +goose StatementBegin
CREATE FUNCTION promote_due_terms(p_now timestamptz, p_user uuid DEFAULT NULL) RETURNS integer
LANGUAGE sql AS $$
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
-- +goose StatementEnd

-- At commit, a subscription inserted in the transaction without terms from
-- its anchor on gets its first entry from its columns as they are then; any
-- other subscription the transaction left without them (its terms deleted,
-- its anchor moved before them) is refused.
-- +goose StatementBegin
CREATE FUNCTION eco_subscription_terms_cover() RETURNS trigger
LANGUAGE plpgsql AS $$
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
-- +goose StatementEnd

COMMENT ON FUNCTION eco_subscription_terms_cover() IS
    'at commit: gives a subscription inserted without terms its first entry, from its columns at its anchor; refuses to leave any other without terms from its anchor on';

CREATE CONSTRAINT TRIGGER eco_subscriptions_terms_cover AFTER INSERT OR UPDATE OF period_anchor ON eco_subscriptions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION eco_subscription_terms_cover();
CREATE CONSTRAINT TRIGGER eco_subscription_terms_cover AFTER DELETE OR UPDATE OF user_id, effective_from ON eco_subscription_terms
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION eco_subscription_terms_cover();

-- Every change an admin makes to a user's plan: who, when, the
-- subscription row before (NULL: the user had none) and after, the terms
-- before and after side by side (usage.Terms as JSON: plan, overrides, the
-- plan with them applied), what changed, which kind of change it was and
-- when the new terms start.
CREATE TABLE eco_plan_audit (
    audit_id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    who                      text NOT NULL,
    at                       timestamptz NOT NULL,
    user_id                  uuid NOT NULL,
    old                      jsonb,
    new                      jsonb NOT NULL,
    change                   text CHECK (change IN ('start', 'upgrade', 'downgrade', 'same')),
    effective_at             timestamptz,
    before                   jsonb,
    after                    jsonb,
    changed                  text[]
);

COMMENT ON COLUMN eco_plan_audit.before IS
    'the terms in force when the change was made (usage.Terms as JSON; null for a new subscription)';
COMMENT ON COLUMN eco_plan_audit.after IS
    'the terms the change asked for, from effective_at (usage.Terms as JSON)';

CREATE INDEX eco_plan_audit_user_idx ON eco_plan_audit (user_id, at DESC);

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

-- =====================================================================
-- 2. Recording: the raw event log, the event key store, quarantine
-- =====================================================================
--
-- The raw event log, eco_api_usage, is range-partitioned by month of
-- occurred_at: ensure_usage_partitions creates the months (the aggregate
-- job creates them ahead) and retention drops whole months.
--
-- Dedupe is on the event id alone, by the event key store. A partitioned
-- table's unique key must hold its partition key, so the raw table could
-- only refuse an id re-sent with the same occurred_at. eco_event_keys
-- remembers every event id for at least usage.DedupeWindow (50 days) after
-- its first receipt, whatever its occurred_at. It is LIST-partitioned by
-- generation: generation g holds the keys received in [g, g + 1) × 50 days
-- from the Unix epoch (usage.KeyGeneration computes it; the record path
-- passes it in). A batch inserts its keys into the current generation
-- (both neighbours within an hour of a boundary), skipping ids found in
-- the previous one, and inserts into the raw table only the ids the key
-- insert returned: one statement. The aggregate job creates generations
-- ahead and drops a whole generation once no batch can read it (a DROP,
-- not a DELETE of billions of rows).
--
-- The raw table has no primary key: only ids the key store returned as new
-- ever reach it, so an index could never refuse a row, and it would be the
-- costliest part of every insert (a btree on random UUIDs) and a third of
-- the raw table's size per event.
--
-- A raw month dropped by retention is remembered (eco_usage_dropped_months),
-- and ensure_usage_partitions never creates it again: a late event for it
-- is quarantined instead of recreating the month, whose days would then be
-- recomputed from that one event and lose their rollup.
--
-- Messages that could not be recorded are quarantined with the reason:
-- nothing is dropped. Rejections carry their position in the message;
-- (source, message_id, position) is unique, so a redelivered batch
-- quarantines nothing twice.

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
    received_at              timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (occurred_at);

CREATE INDEX eco_api_usage_occurred_brin ON eco_api_usage USING brin (occurred_at);

-- Raw months dropped by retention; ensure_usage_partitions leaves them
-- dropped.
CREATE TABLE eco_usage_dropped_months (
    month                    date PRIMARY KEY CHECK (month = date_trunc('month', month)),
    dropped_at               timestamptz NOT NULL
);

-- ensure_usage_partitions creates the monthly partitions of eco_api_usage
-- for the months from the one holding from_ts, count months in all, except
-- the months retention dropped. It is safe to call concurrently and
-- repeatedly.
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

-- The previous month too: events may be backfilled up to 35 days late.
SELECT ensure_usage_partitions(now() - interval '1 month', 4);

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

-- The current and the next generation.
SELECT ensure_event_key_generations(ARRAY[g, g + 1])
FROM (SELECT floor(extract(epoch FROM now()) / (50 * 86400))::integer AS g) x;

CREATE TABLE eco_rejected_events (
    rejected_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source                   text NOT NULL,
    message_id               text NOT NULL DEFAULT '',
    event_id                 text NOT NULL DEFAULT '',
    field                    text NOT NULL DEFAULT '',
    reason                   text NOT NULL,
    body                     text NOT NULL,
    rejected_at              timestamptz NOT NULL DEFAULT now(),
    position                 integer
);

COMMENT ON COLUMN eco_rejected_events.position IS
    'the event''s index in its message (0 for a one-event message or one refused whole); NULL before keys existed or without a message id';

CREATE INDEX eco_rejected_events_at_idx ON eco_rejected_events (rejected_at);
CREATE UNIQUE INDEX eco_rejected_events_key ON eco_rejected_events (source, message_id, position)
    WHERE position IS NOT NULL;

-- =====================================================================
-- 3. Live counters and dirty marks
-- =====================================================================
--
-- In the transaction that inserts a batch's events, the record path moves
-- the live per-user, per-day counters by the rows actually inserted and
-- marks the days the rollup must recompute (increment_api_calls, called by
-- record_usage_counts of 8.). Quota checks and "today" read the counters.
--
-- Record slots. Every record transaction locks one row of
-- eco_record_slots, the lowest that no other transaction holds (FOR UPDATE
-- SKIP LOCKED, which never waits), until it commits, and writes its live
-- counters and dirty marks in rows of that slot only. Two record
-- transactions at once therefore never write the same row, and neither
-- waits for the other's commit; with one row per user and day (or per day)
-- for everyone, concurrent batches for the same day would queue on those
-- rows until each other's commit. With all 64 slots held (more record
-- transactions at once than the SQS mapping's MaximumConcurrency allows) a
-- batch shares slot 0 and may wait for it.
--
-- The live counters are kept per user, day and slot in
-- eco_usage_counter_slots (a row for each slot that counted something: one
-- row per user and day at a concurrency of one), and eco_usage_counters is
-- a view that sums them, so every reader reads one row per user and day.
-- Fixtures and tools may insert into the view (the rows go to slot 0); an
-- upsert must name the table.
--
-- Dirty marks per user and day. A record transaction marks the days of the
-- users whose events it inserted (eco_usage_dirty_user_days, in its slot),
-- not the days as a whole, and the rollup recomputes those users' rows of
-- the day only (aggregate_daily_usage's p_users): one user's late events
-- cost the other users' days nothing. eco_usage_dirty_days holds the marks
-- of whole days: backfills and days that retention found unaggregated. A
-- run clears a mark only if it is still the one it read.
--
-- Sums that cannot overflow. Calls and errors are bounded by
-- usage.MaxQuantity and stay exact (see usage's bounds): a batch's calls
-- are at most 10,000 × usage.MaxQuantity and a counter's calls at most a
-- day of them. Sums of bytes and latency saturate at the bigint maximum
-- instead of failing with "bigint out of range" (one event of
-- 9223372036854775807 bytes would stop every later batch of its user and
-- day), here and in the rollup and its summaries. least(sum(x), max) is
-- used over NOT NULL columns only: least ignores a NULL.

CREATE TABLE eco_record_slots (
    slot                     smallint PRIMARY KEY CHECK (slot >= 0)
);

COMMENT ON TABLE eco_record_slots IS
    'record slots: a record transaction locks one (SKIP LOCKED) and writes counters and dirty marks in its rows only';

INSERT INTO eco_record_slots (slot) SELECT generate_series(0, 63);

-- Counter rows are updated in place many times a day: leave room on each
-- page so the updates are HOT (no index maintenance).
CREATE TABLE eco_usage_counter_slots (
    user_id                  uuid NOT NULL,
    day                      date NOT NULL,
    calls                    bigint NOT NULL DEFAULT 0,
    errors_4xx               bigint NOT NULL DEFAULT 0,
    errors_5xx               bigint NOT NULL DEFAULT 0,
    request_bytes            bigint NOT NULL DEFAULT 0,
    response_bytes           bigint NOT NULL DEFAULT 0,
    updated_at               timestamptz NOT NULL DEFAULT now(),
    slot                     smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day, slot)
) WITH (fillfactor = 50);

-- The admin reports read today's and dirty days' live counters of every user.
CREATE INDEX eco_usage_counter_slots_day_idx ON eco_usage_counter_slots (day);

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

CREATE TABLE eco_usage_dirty_days (
    day                      date PRIMARY KEY,
    marked_at                timestamptz NOT NULL DEFAULT now()
);

-- increment_api_calls adds the given per-user, per-day deltas to the live
-- counters and marks those users' days dirty, in the slot it locks (see
-- above), and returns the calls it counted. The arrays are parallel; rows
-- are written in key order. It is plpgsql, not sql: PostgreSQL (before 18)
-- plans a LANGUAGE sql function's body afresh on every call, which costs
-- the record path about two thirds of its throughput; plpgsql caches the
-- plans of its static statements for the session.
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

-- =====================================================================
-- 4. Limits: rate limiting and the limit check
-- =====================================================================
--
-- Rate limiting keeps the GCRA state of each key; the limit check is the
-- request path's cold decision in one round trip; the usage alerts ledger
-- claims each threshold crossing once.
--
-- Times in the limiter are integer microseconds since the Unix epoch,
-- passed in by the caller (the clock is injected; the database's clock is
-- never read), so that every decision is exact integer arithmetic.
--
-- The limit check decides under terms computed in Go. The billing period
-- (usage.PeriodAt), the merge of a user's overrides into the plan
-- (usage.Plan.Apply) and the GCRA interval (limits.IntervalMicros) exist
-- once, in Go, and limit_check receives them as parameters, with the
-- version of the terms they come from (terms_version, in 1.).

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

-- =====================================================================
-- 5. The daily rollup and the scheduled jobs
-- =====================================================================
--
-- The aggregate job recomputes the dirty days (3.) into eco_usage_daily,
-- one row per user, day, endpoint and API key (aggregate_daily_usage); it
-- records which days have been aggregated (retention drops raw data only
-- behind them), and a job lock keeps two scheduled runs from working at
-- once.
--
-- Definitions of the rollup (shared with rolluptest.Rollup, the Go
-- reference the tests compare against):
--   calls            sum(quantity)
--   errors_4xx/5xx   sum(quantity) of the rows with a 4xx / 5xx status: an
--                    event of quantity n that failed is n failed calls, so
--                    errors never exceed calls
--   request_bytes, response_bytes, latency_sum_ms
--                    saturating sums over the rows (an event carries its
--                    bytes and latency as measured, whatever its quantity)
--   latency_p50_ms, latency_p95_ms
--                    percentile_disc over the rows' latency_ms (unweighted):
--                    the smallest observed latency whose cumulative share of
--                    the rows is >= p, i.e. sorted[ceil(p*n) - 1]; always an
--                    observed integer value
--   latency_max_ms   max(latency_ms)
--   events           count(*) of raw rows
-- A day is the UTC calendar day of occurred_at.
--
-- The endpoint cap. The rollup keeps at most p_max_endpoints endpoints of
-- one user and day by name; the calls of the others are kept under the one
-- endpoint '(other)'. Endpoints come from callers (POST /v1/events takes
-- any text of up to 256 bytes), so without a cap one caller could grow
-- eco_usage_daily, its summaries and every per-endpoint report without
-- bound. The record path stays one statement: the cap is applied here,
-- where a day's rows are made. A user's day with more than p_max_endpoints
-- distinct endpoints keeps its p_max_endpoints most called ones (calls
-- summed over API keys, most first, ties in byte order, an endpoint
-- literally named '(other)' last); the raw rows of the others are rolled up
-- as endpoint '(other)', one row per API key, with the definitions above.
-- Totals per user and day are unchanged, and so are the summaries (6.),
-- which the triggers on eco_usage_daily keep from these rows.

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

-- One row per day that aggregate_daily_usage has recomputed, and when. A
-- day whose raw rows changed afterwards is dirty again; a day with raw rows
-- and no row here has never been aggregated. Retention reads both.
CREATE TABLE eco_usage_aggregated_days (
    day                      date PRIMARY KEY,
    aggregated_at            timestamptz NOT NULL
);

-- aggregate_daily_usage makes the rollup rows of one UTC day exactly the
-- aggregate of that day's raw events under the endpoint cap, and returns
-- the number of rows it inserted or changed (unchanged rows are not
-- rewritten, and keep their aggregated_at). It is idempotent: running it
-- twice leaves the same rollup. p_part, p_parts and the cap have defaults
-- (0, 1 and rollup.DefaultMaxEndpointsPerDay), so aggregate_daily_usage(day)
-- does the whole day.
--
-- With p_parts > 1 it does only the users whose id's last byte modulo
-- p_parts is p_part, so that the parts of one day can run in parallel
-- transactions (the job does this when few days are dirty); the parts
-- together are the whole day. With p_users it does only those users' rows
-- of the day (and deletes them when their raw events are gone); the other
-- users' rows are not touched. The day's raw rows are still read once (the
-- raw table has no index by user: it would cost every insert), but only
-- those users' are sorted and aggregated.
--
-- Two overlapping recomputes of the same slice cannot double-count: rows
-- are keyed by the rollup's unique key and replaced, never added to. Rows
-- without raw events any more (or folded now) are deleted. A day whose raw
-- partition no longer exists (dropped by retention) is refused, so that a
-- recompute can never wipe a rollup whose source is gone.
--
-- The cap costs a normal day two small aggregates over the day's groups;
-- the raw rows are read a second time only when some user is over the cap
-- (the '(other)' rows, percentiles included, come from their raw rows), and
-- then once for all of them.
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
-- +goose StatementEnd

-- A lock row per scheduled job, held for a lease. Advisory locks are not
-- used: they are session state and pin connections behind RDS Proxy. A
-- holder that dies leaves the row behind until locked_until passes.
CREATE TABLE eco_job_locks (
    job                      text PRIMARY KEY,
    holder                   text NOT NULL,
    acquired_at              timestamptz NOT NULL,
    locked_until             timestamptz NOT NULL
);

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

-- =====================================================================
-- 6. Summaries for the reports
-- =====================================================================
--
-- eco_usage_user_daily is eco_usage_daily summed over endpoints and keys:
-- one row per user and day. GET /v1/usage/daily reads a user's closed days
-- from it (one row per day instead of one per endpoint and key), so it
-- carries the day's highest per-endpoint p95.
--
-- eco_usage_user_monthly holds per-user, per-month running totals, so that
-- the admin reports (summary, top users) read at most two rows per user
-- for a 30-day range, and 13 for 366 days, instead of one row per user and
-- day. A row holds, for one user and one calendar month, the month-to-date
-- totals of eco_usage_user_daily: element i of each array is the sum of
-- days 1..i of the month, and every array is as long as the month. The
-- total of days a..b of the month is then arr[b] - arr[a - 1] (arr[0] is
-- NULL, read as 0): two array reads per row, whatever the length of the
-- range. A month whose rollup rows are all deleted keeps a row of zeros.
--
-- Both are kept in step with eco_usage_daily by the statement-level
-- triggers at the end of this part (refresh_usage_user_pairs), in the same
-- transaction as whatever writes the rollup (aggregate_daily_usage()), so
-- no job has to fill them. Bulk loads that bypass triggers
-- (session_replication_role = replica) must call
-- refresh_usage_user_daily(from, to) afterwards, which rebuilds both.

CREATE TABLE eco_usage_user_daily (
    day                      date NOT NULL,
    user_id                  uuid NOT NULL,
    calls                    bigint NOT NULL,
    errors_4xx               bigint NOT NULL,
    errors_5xx               bigint NOT NULL,
    request_bytes            bigint NOT NULL,
    response_bytes           bigint NOT NULL,
    latency_p95_ms           integer,
    PRIMARY KEY (day, user_id)
);

-- A user's days: the month refresh and GET /v1/usage/daily read them.
CREATE INDEX eco_usage_user_daily_user_idx ON eco_usage_user_daily (user_id, day)
    INCLUDE (calls, errors_4xx, errors_5xx);

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

-- usage_month_steps returns the month-to-date array (length p_len) of
-- values p_values added on days p_days of the month.
-- +goose StatementBegin
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

-- usage_array_add adds two arrays of the same length element by element.
-- +goose StatementBegin
CREATE FUNCTION usage_array_add(a bigint[], b bigint[])
RETURNS bigint[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY(SELECT x + y FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i) ORDER BY i);
$$;
-- +goose StatementEnd

-- usage_month_add adds values p_values on days p_days to the month-to-date
-- array a. The aggregation's common change is one day whose later days in
-- the month are still empty: the array keeps its prefix and the rest becomes
-- one value (array_fill, no per-element work).
-- +goose StatementBegin
CREATE FUNCTION usage_month_add(a bigint[], p_days int[], p_values bigint[])
RETURNS bigint[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN cardinality(p_days) = 1 AND a[cardinality(a)] = a[p_days[1]]
        THEN a[1:p_days[1] - 1] || array_fill(a[p_days[1]] + p_values[1], ARRAY[cardinality(a) - p_days[1] + 1])
        ELSE usage_array_add(a, usage_month_steps(cardinality(a), p_days, p_values))
    END;
$$;
-- +goose StatementEnd

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
-- +goose StatementBegin
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

-- rebuild_usage_user_months recomputes the month rows of the months
-- overlapping [p_from, p_to] from eco_usage_user_daily, for bulk loads
-- (refresh_usage_user_daily); nothing else may write the summaries
-- meanwhile.
-- +goose StatementBegin
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

-- refresh_usage_user_pairs recomputes the summary rows of the given
-- (day, user) pairs from eco_usage_daily, removing those with no rollup
-- rows left (sums of bytes over a user's endpoints saturate), and adds
-- each summary row's change to its month row. The day and user of a
-- summary row have one writer at a time (the aggregation of that day), so
-- old and new are exact.
-- +goose StatementBegin
CREATE FUNCTION refresh_usage_user_pairs(p_days date[], p_users uuid[])
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

-- refresh_usage_user_daily rebuilds the summary of a range of days from
-- eco_usage_daily, and the month rows of the months it overlaps, and
-- returns the summary rows written.
-- +goose StatementBegin
CREATE FUNCTION refresh_usage_user_daily(p_from date, p_to date)
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

-- =====================================================================
-- 7. Overage billing
-- =====================================================================
--
-- The ledger holds one row per user and billing period (seq 0), plus one
-- per later adjustment (seq 1, 2, ...). The idempotency key is derived
-- from (user, period, seq) and sent with the Stripe request. A run leases
-- the rows it bills, so that concurrent runs bill each row once; a skipped
-- row notes why (nothing to charge, or a credit owed after usage fell).
--
-- Each row keeps the lines it was priced with (one per part of the period
-- under one set of terms, usage.Line as JSON; the lines count the period's
-- included calls in whole, the segments of a period drawing on them in
-- order), the invoice item's description as sent (Stripe refuses a reused
-- idempotency key with other parameters, so a retry must send the same
-- text), the Stripe customers it was sent to, and how often an admin
-- retried it. A dry run writes no rows: it reports what a real run would
-- write, so that nothing it computed is ever read as charged.
-- eco_overage_progress says up to where every closed period of a
-- subscription has its rows, so that a run after dry runs bills every
-- period not billed yet, however old.

-- A row is updated two or three times after its insert (claimed, maybe
-- released, marked) and is wide, as it carries its lines: free room in
-- each page lets those updates stay on the page (HOT) instead of touching
-- the table's indexes. (Moving the lines out of line, TOAST, measured no
-- better: what the updates saved, the inserts paid.)
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
    status                   text NOT NULL CHECK (status IN ('pending', 'billed', 'failed', 'skipped')),
    stripe_object_id         text,
    attempts                 integer NOT NULL DEFAULT 0,
    last_error               text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    lease_owner              text,
    lease_until              timestamptz,
    note                     text,
    lines                    jsonb CHECK (jsonb_typeof(lines) = 'array'),
    description              text NOT NULL DEFAULT '',
    sent_to                  text[] NOT NULL DEFAULT '{}',
    retries                  integer NOT NULL DEFAULT 0 CHECK (retries >= 0),
    UNIQUE (user_id, period_start, seq)
) WITH (fillfactor = 50);

COMMENT ON COLUMN eco_overage_ledger.lease_owner IS
    'the billing run that last claimed the row; a run never claims a row twice';
COMMENT ON COLUMN eco_overage_ledger.lease_until IS
    'other runs leave the row alone until then; NULL when not leased';
COMMENT ON COLUMN eco_overage_ledger.lines IS
    'the period''s pricing as of this row: each part under one set of terms with its plan, price, included share, calls and amount (usage.Line); NULL on a row that priced the whole period as a package';
COMMENT ON COLUMN eco_overage_ledger.sent_to IS
    'the Stripe customers the row was claimed for, first first: it is looked up under them before it is sent again';

-- Claims take the oldest pending rows: an index in that order over the
-- pending rows alone lets a claim of 100 read about 100 entries (an index
-- on status alone would make every claim read and sort every pending row).
CREATE INDEX eco_overage_ledger_pending_idx ON eco_overage_ledger (created_at, ledger_id) WHERE status = 'pending';

-- The admin's list reads one month of periods in cursor order.
CREATE INDEX eco_overage_ledger_period_idx ON eco_overage_ledger (period_start, user_id, seq);

-- How far each subscription's closed periods have their ledger rows: every
-- period ending at or before closed_through is planned. A subscription
-- without a row starts from its anchor.
CREATE TABLE eco_overage_progress (
    user_id                  uuid PRIMARY KEY,
    closed_through           timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL
);

-- What admins did to ledger rows (a retry of a failed row): who, when, the
-- row before and after.
CREATE TABLE eco_overage_audit (
    audit_id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    who                      text NOT NULL,
    at                       timestamptz NOT NULL,
    ledger_id                uuid NOT NULL,
    action                   text NOT NULL CHECK (action IN ('retry')),
    old                      jsonb NOT NULL,
    new                      jsonb NOT NULL
);

CREATE INDEX eco_overage_audit_ledger_idx ON eco_overage_audit (ledger_id, at);

-- =====================================================================
-- 8. Notifications
-- =====================================================================
--
-- Alerts that reach people: threshold rules, crossings raised exactly once
-- where usage is counted, an outbox, webhook endpoints and their
-- deliveries.
--
-- Rules. eco_notify_rules holds the rules of each plan (the defaults of its
-- users) and of single users: a percentage of the included calls, a number
-- of calls, an amount of overage to date (the currency's minor unit) or
-- the hard quota reached. A user's rules are its plan's and its own. Every
-- plan starts with 80 % and 100 % of its included calls.
--
-- Arming. The record path knows no terms: a user's rules become calls
-- thresholds of one billing period in Go (shared/notify, under the terms in
-- force), written to eco_notify_periods (one row per user and period, the
-- days [first_day, end_day) whose counters it sums, and next_calls, the
-- lowest threshold not yet crossed) and eco_notify_thresholds (one row per
-- user, period and rule, its event id chosen at arming: the id of the one
-- event its crossing raises). A period is armed under the versions it was
-- computed from: the global epoch (eco_notify_epoch, bumped by every write
-- of a plan or a plan's rule) and the user's version (eco_notify_users,
-- bumped by every write of the user's subscription or rules). Work on rules
-- and plans thus costs nothing until a user's usage next moves.
--
-- Crossings, in the record transaction. record_usage_counts runs
-- increment_api_calls and then, for the batch's users and days: a day whose
-- period is not armed under the current versions gets a pending mark
-- (eco_notify_pending, the outbox of work for the armer, written in the
-- same transaction as the counters); a period armed and open (next_calls
-- set) is locked, its used calls summed from the live counters, and every
-- threshold at or below them fires: the threshold row is marked and the
-- event written to eco_notify_outbox, both in the counters' transaction.
-- Only open periods are locked: the lock orders the record transactions of
-- one user while a threshold of its period is still ahead (without it, two
-- batches that cross a threshold only together would each see the other's
-- calls uncommitted, and neither would raise it), and it is held from the
-- counters' last statement to the commit. Arming ends the same way
-- (notify_arm fires what the period has crossed already), so a crossing is
-- raised once per user, period and rule whatever the order of batches,
-- redeliveries, late events and arming.
--
-- Delivery. eco_notify_outbox rows are fanned out by the deliver function
-- into eco_webhook_deliveries, one per endpoint that wants the event (the
-- user's own endpoints and the platform's, user_id NULL); each attempt is
-- logged in eco_webhook_attempts. A delivery is leased while it is tried
-- (leased_until), so that a redelivered queue message never sends it twice
-- at once.

CREATE TABLE eco_notify_rules (
    rule_id                  uuid PRIMARY KEY,
    plan_id                  text REFERENCES eco_plans (plan_id) ON DELETE CASCADE,
    user_id                  uuid,
    kind                     text NOT NULL CHECK (kind IN ('percent', 'calls', 'overage', 'quota')),
    value                    bigint NOT NULL CHECK (value >= 0),
    enabled                  boolean NOT NULL DEFAULT true,
    description              text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL,
    created_by               text NOT NULL DEFAULT '',
    CONSTRAINT eco_notify_rules_owner CHECK ((plan_id IS NULL) <> (user_id IS NULL)),
    CONSTRAINT eco_notify_rules_value CHECK ((kind = 'quota') = (value = 0))
);

COMMENT ON TABLE eco_notify_rules IS
    'threshold rules of a plan (its users'' defaults) or of one user: percent of included calls, calls, overage to date (minor units), hard quota reached';

CREATE UNIQUE INDEX eco_notify_rules_plan_idx ON eco_notify_rules (plan_id, kind, value) WHERE plan_id IS NOT NULL;
CREATE UNIQUE INDEX eco_notify_rules_user_idx ON eco_notify_rules (user_id, kind, value) WHERE user_id IS NOT NULL;

-- The plans' rules, written before the triggers below exist: they start
-- at epoch 1.
INSERT INTO eco_notify_rules (rule_id, plan_id, kind, value, description, created_at, updated_at, created_by)
SELECT gen_random_uuid(), p.plan_id, 'percent', t, t || ' % of the included calls', now(), now(), 'baseline'
  FROM eco_plans p, (VALUES (80), (100)) AS v(t);

-- The epoch: one row, bumped by every write of a plan or of a plan's rule.
CREATE TABLE eco_notify_epoch (
    epoch                    bigint NOT NULL
);
INSERT INTO eco_notify_epoch VALUES (1);

-- Each user's version, bumped by every write of its subscription or of its
-- own rules (a user without a row is at version 0).
CREATE TABLE eco_notify_users (
    user_id                  uuid PRIMARY KEY,
    version                  bigint NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION notify_bump() RETURNS trigger
LANGUAGE plpgsql AS $$
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
-- +goose StatementEnd

CREATE TRIGGER eco_notify_rules_bump AFTER INSERT OR UPDATE OR DELETE ON eco_notify_rules
    FOR EACH ROW EXECUTE FUNCTION notify_bump();
CREATE TRIGGER eco_plans_notify_bump AFTER INSERT OR UPDATE OR DELETE ON eco_plans
    FOR EACH ROW EXECUTE FUNCTION notify_bump();
CREATE TRIGGER eco_subscriptions_notify_bump AFTER INSERT OR UPDATE OR DELETE ON eco_subscriptions
    FOR EACH ROW EXECUTE FUNCTION notify_bump();

CREATE TABLE eco_notify_periods (
    user_id                  uuid NOT NULL,
    first_day                date NOT NULL,
    end_day                  date NOT NULL CHECK (end_day > first_day),
    period_start             timestamptz NOT NULL,
    period_end               timestamptz NOT NULL,
    epoch                    bigint NOT NULL,
    user_version             bigint NOT NULL,
    next_calls               bigint,
    armed_at                 timestamptz NOT NULL,
    PRIMARY KEY (user_id, first_day)
);

COMMENT ON TABLE eco_notify_periods IS
    'a user''s billing period armed with its thresholds (eco_notify_thresholds) under the epoch and user version it was computed from; next_calls is the lowest threshold not yet crossed';

CREATE INDEX eco_notify_periods_open_idx ON eco_notify_periods (armed_at) WHERE next_calls IS NOT NULL;

CREATE TABLE eco_notify_thresholds (
    event_id                 uuid PRIMARY KEY,
    user_id                  uuid NOT NULL,
    first_day                date NOT NULL,
    rule_id                  uuid NOT NULL,
    event_type               text NOT NULL,
    calls                    bigint NOT NULL CHECK (calls >= 1),
    detail                   jsonb NOT NULL CHECK (jsonb_typeof(detail) = 'object'),
    fired_at                 timestamptz,
    used_calls               bigint,
    UNIQUE (user_id, first_day, rule_id),
    FOREIGN KEY (user_id, first_day) REFERENCES eco_notify_periods (user_id, first_day) ON DELETE CASCADE
);

CREATE TABLE eco_notify_pending (
    user_id                  uuid NOT NULL,
    day                      date NOT NULL,
    marked_at                timestamptz NOT NULL,
    PRIMARY KEY (user_id, day)
);

CREATE INDEX eco_notify_pending_marked_idx ON eco_notify_pending (marked_at);

COMMENT ON TABLE eco_notify_pending IS
    'days of users whose usage moved while their period was not armed under the current versions: the armer''s work, written with the counters';

CREATE TABLE eco_notify_outbox (
    event_id                 uuid PRIMARY KEY,
    event_type               text NOT NULL,
    user_id                  uuid,
    data                     jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object'),
    created_at               timestamptz NOT NULL,
    fanned_out_at            timestamptz,
    published_at             timestamptz
);

CREATE INDEX eco_notify_outbox_waiting_idx ON eco_notify_outbox (created_at) WHERE fanned_out_at IS NULL OR published_at IS NULL;
CREATE INDEX eco_notify_outbox_user_idx ON eco_notify_outbox (user_id, created_at);

CREATE TABLE eco_webhook_endpoints (
    endpoint_id              uuid PRIMARY KEY,
    user_id                  uuid,
    url                      text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description              text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    event_types              text[] NOT NULL DEFAULT '{}',
    secret                   text NOT NULL,
    previous_secret          text,
    previous_expires_at      timestamptz,
    enabled                  boolean NOT NULL DEFAULT true,
    disabled_reason          text NOT NULL DEFAULT '',
    failing_since            timestamptz,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL,
    CONSTRAINT eco_webhook_endpoints_previous CHECK ((previous_secret IS NULL) = (previous_expires_at IS NULL))
);

COMMENT ON TABLE eco_webhook_endpoints IS
    'webhook endpoints: a user''s own (user_id) or the platform''s (user_id NULL: every user''s events); secrets sign Standard Webhooks, the previous one too until previous_expires_at';

CREATE INDEX eco_webhook_endpoints_user_idx ON eco_webhook_endpoints (user_id);

CREATE TABLE eco_webhook_deliveries (
    delivery_id              uuid PRIMARY KEY,
    event_id                 uuid NOT NULL REFERENCES eco_notify_outbox (event_id),
    endpoint_id              uuid NOT NULL REFERENCES eco_webhook_endpoints (endpoint_id) ON DELETE CASCADE,
    user_id                  uuid,
    status                   text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts                 integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    retry_step               integer NOT NULL DEFAULT 0 CHECK (retry_step >= 0),
    next_attempt_at          timestamptz,
    leased_until             timestamptz,
    last_status              integer,
    last_error               text NOT NULL DEFAULT '',
    replays                  integer NOT NULL DEFAULT 0 CHECK (replays >= 0),
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL,
    delivered_at             timestamptz,
    UNIQUE (event_id, endpoint_id)
);

CREATE INDEX eco_webhook_deliveries_due_idx ON eco_webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX eco_webhook_deliveries_endpoint_idx ON eco_webhook_deliveries (endpoint_id, created_at);

CREATE TABLE eco_webhook_attempts (
    delivery_id              uuid NOT NULL REFERENCES eco_webhook_deliveries (delivery_id) ON DELETE CASCADE,
    attempt                  integer NOT NULL CHECK (attempt >= 1),
    at                       timestamptz NOT NULL,
    status_code              integer,
    outcome                  text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'refused')),
    answer                   text NOT NULL DEFAULT '',
    latency_ms               integer NOT NULL CHECK (latency_ms >= 0),
    replay                   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (delivery_id, attempt)
);

-- notify_fire fires the thresholds crossed by the periods (p_users[i],
-- p_first_days[i]) that are open: it locks them in key order, sums each
-- one's used calls from the live counters in a statement of its own (which
-- sees every transaction that held the lock before), marks every threshold
-- at or below them fired, writes their events to the outbox and moves
-- next_calls on. It returns the events written.
-- +goose StatementBegin
CREATE FUNCTION notify_fire(p_users uuid[], p_first_days date[], p_now timestamptz)
RETURNS uuid[]
LANGUAGE plpgsql AS $$
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
-- +goose StatementEnd

-- record_usage_counts is the record path's last statement: the counters
-- and dirty marks (increment_api_calls, in 3.), then the crossings of the
-- batch's users and days (see Crossings above). It returns the calls
-- counted, the events fired and how many of the batch's days are pending
-- (marked now or before).
-- +goose StatementBegin
CREATE FUNCTION record_usage_counts(
    p_user_ids       uuid[],
    p_days           date[],
    p_calls          bigint[],
    p_errors_4xx     bigint[],
    p_errors_5xx     bigint[],
    p_request_bytes  bigint[],
    p_response_bytes bigint[],
    p_now            timestamptz,
    OUT calls        bigint,
    OUT fired        uuid[],
    OUT pending      integer)
LANGUAGE plpgsql AS $$
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
-- +goose StatementEnd

-- notify_arm arms the user's period [p_first_day, p_end_day) with the
-- thresholds computed in Go under the versions (p_epoch, p_user_version)
-- they were read with: the period row (unless it was armed under newer
-- versions meanwhile), the thresholds not yet fired (new ones under the
-- given event ids; a fired one stays as it fired; those of rules no longer
-- in force go), next_calls; it removes the period's pending marks and fires
-- what the period has crossed already. It returns the events fired.
-- +goose StatementBegin
CREATE FUNCTION notify_arm(p_user uuid, p_first_day date, p_end_day date, p_period_start timestamptz,
    p_period_end timestamptz, p_epoch bigint, p_user_version bigint,
    p_event_ids uuid[], p_rule_ids uuid[], p_types text[], p_calls bigint[], p_details text[], p_now timestamptz)
RETURNS uuid[]
LANGUAGE plpgsql AS $$
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
-- +goose StatementEnd

-- +goose Down
-- Everything above, in the reverse order of its parts, dependents first.
-- The partitions go with their tables.

-- 8. Notifications
DROP FUNCTION notify_arm(uuid, date, date, timestamptz, timestamptz, bigint, bigint, uuid[], uuid[], text[], bigint[], text[], timestamptz);
DROP FUNCTION record_usage_counts(uuid[], date[], bigint[], bigint[], bigint[], bigint[], bigint[], timestamptz);
DROP FUNCTION notify_fire(uuid[], date[], timestamptz);
DROP TABLE eco_webhook_attempts;
DROP TABLE eco_webhook_deliveries;
DROP TABLE eco_webhook_endpoints;
DROP TABLE eco_notify_outbox;
DROP TABLE eco_notify_pending;
DROP TABLE eco_notify_thresholds;
DROP TABLE eco_notify_periods;
DROP TRIGGER eco_subscriptions_notify_bump ON eco_subscriptions;
DROP TRIGGER eco_plans_notify_bump ON eco_plans;
DROP TRIGGER eco_notify_rules_bump ON eco_notify_rules;
DROP FUNCTION notify_bump();
DROP TABLE eco_notify_users;
DROP TABLE eco_notify_epoch;
DROP TABLE eco_notify_rules;

-- 7. Overage billing
DROP TABLE eco_overage_audit;
DROP TABLE eco_overage_progress;
DROP TABLE eco_overage_ledger;

-- 6. Summaries for the reports
DROP TRIGGER eco_usage_daily_sync_delete ON eco_usage_daily;
DROP TRIGGER eco_usage_daily_sync_update ON eco_usage_daily;
DROP TRIGGER eco_usage_daily_sync_insert ON eco_usage_daily;
DROP FUNCTION eco_usage_daily_sync_both();
DROP FUNCTION eco_usage_daily_sync_old();
DROP FUNCTION eco_usage_daily_sync_new();
DROP FUNCTION refresh_usage_user_daily(date, date);
DROP FUNCTION refresh_usage_user_pairs(date[], uuid[]);
DROP FUNCTION rebuild_usage_user_months(date, date);
DROP FUNCTION add_usage_user_months(date[], uuid[], bigint[], bigint[], bigint[]);
DROP FUNCTION usage_month_add(bigint[], int[], bigint[]);
DROP FUNCTION usage_array_add(bigint[], bigint[]);
DROP FUNCTION usage_month_steps(int, int[], bigint[]);
DROP TABLE eco_usage_user_month_locks;
DROP TABLE eco_usage_user_monthly;
DROP TABLE eco_usage_user_daily;

-- 5. The daily rollup and the scheduled jobs
DROP TABLE eco_job_runs;
DROP TABLE eco_job_locks;
DROP FUNCTION aggregate_daily_usage(date, integer, integer, integer, uuid[]);
DROP TABLE eco_usage_aggregated_days;
DROP TABLE eco_usage_daily;

-- 4. Limits
DROP FUNCTION limit_check(uuid, text, timestamptz, bigint, bigint, integer[], timestamptz, timestamptz,
    bigint, boolean, bigint, bigint, text);
DROP TABLE eco_usage_alerts;
DROP FUNCTION rate_limit_take(text, bigint, bigint, bigint, bigint);
DROP TABLE eco_rate_limits;

-- 3. Live counters and dirty marks
DROP FUNCTION increment_api_calls(uuid[], date[], bigint[], bigint[], bigint[], bigint[], bigint[]);
DROP TABLE eco_usage_dirty_days;
DROP TABLE eco_usage_dirty_user_days;
DROP VIEW eco_usage_counters;
DROP FUNCTION eco_usage_counters_insert();
DROP TABLE eco_usage_counter_slots;
DROP TABLE eco_record_slots;

-- 2. Recording
DROP TABLE eco_rejected_events;
DROP FUNCTION ensure_event_key_generations(integer[]);
DROP TABLE eco_event_keys;
DROP FUNCTION ensure_usage_partitions(timestamptz, integer);
DROP TABLE eco_usage_dropped_months;
DROP TABLE eco_api_usage;

-- 1. Plans, subscriptions and API keys
DROP TABLE eco_api_keys;
DROP TABLE eco_plan_audit;
DROP FUNCTION promote_due_terms(timestamptz, uuid);
DROP FUNCTION terms_version(bigint, bigint);
DROP TABLE eco_subscription_terms;
DROP TABLE eco_subscriptions;
DROP FUNCTION eco_subscription_terms_cover();
DROP TABLE eco_plans;
DROP FUNCTION bump_terms_version();
DROP FUNCTION valid_price_tiers(jsonb);
DROP SEQUENCE eco_terms_version_seq;

-- Alerts that reach people: threshold rules, crossings raised exactly once
-- where usage is counted, an outbox, webhook endpoints and their deliveries.
--
-- 1. Rules. eco_notify_rules holds the rules of each plan (the defaults of
--    its users) and of single users: a percentage of the included calls, a
--    number of calls, an amount of overage to date (the currency's minor
--    unit) or the hard quota reached. A user's rules are its plan's and its
--    own. The plans' 80 % and 100 % rules are what usage.Limiter alerted
--    before.
--
-- 2. Arming. The record path knows no terms: a user's rules become calls
--    thresholds of one billing period in Go (shared/notify, under the terms
--    in force), written to eco_notify_periods (one row per user and
--    period, the days [first_day, end_day) whose counters it sums, and
--    next_calls, the lowest threshold not yet crossed) and
--    eco_notify_thresholds (one row per user, period and rule, its event id
--    chosen at arming: the id of the one event its crossing raises). A
--    period is armed under the versions it was computed from: the global
--    epoch (eco_notify_epoch, bumped by every write of a plan or a plan's
--    rule) and the user's version (eco_notify_users, bumped by every write
--    of the user's subscription or rules). Work on rules and plans thus
--    costs nothing until a user's usage next moves.
--
-- 3. Crossings, in the record transaction. record_usage_counts runs
--    increment_api_calls and then, for the batch's users and days: a day
--    whose period is not armed under the current versions gets a pending
--    mark (eco_notify_pending, the outbox of work for the armer, written in
--    the same transaction as the counters); a period armed and open
--    (next_calls set) is locked, its used calls summed from the live
--    counters, and every threshold at or below them fires: the threshold
--    row is marked and the event written to eco_notify_outbox, both in the
--    counters' transaction. Only open periods are locked: the lock orders
--    the record transactions of one user while a threshold of its period
--    is still ahead (without it, two batches that cross a threshold only
--    together would each see the other's calls uncommitted, and neither
--    would raise it), and it is held from the counters' last statement to
--    the commit. Arming ends the same way (notify_arm fires what the
--    period has crossed already), so a crossing is raised once per user,
--    period and rule whatever the order of batches, redeliveries, late
--    events and arming.
--
-- 4. Delivery. eco_notify_outbox rows are fanned out by the deliver
--    function into eco_webhook_deliveries, one per endpoint that wants the
--    event (the user's own endpoints and the platform's, user_id NULL);
--    each attempt is logged in eco_webhook_attempts. A delivery is leased
--    while it is tried (leased_until), so that a redelivered queue message
--    never sends it twice at once.

-- +goose Up
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

INSERT INTO eco_notify_rules (rule_id, plan_id, kind, value, description, created_at, updated_at, created_by)
SELECT gen_random_uuid(), p.plan_id, 'percent', t, t || ' % of the included calls', now(), now(), 'migration 00014'
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
-- and dirty marks (increment_api_calls, unchanged), then the crossings of
-- the batch's users and days (see 3. above). It returns the calls counted,
-- the events fired and how many of the batch's days are pending (marked
-- now or before).
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

-- Billing under the terms in force when the usage happened.
--
-- Price models: a plan (and a user's overrides) prices the calls above its
-- included calls per unit, by package (today's: units of N calls rounded
-- up), or by graduated or volume tiers (usage.Price). The tiers are a JSON
-- array of {"up_to": n | null, "unit_price": n, "flat_price": n}, the
-- shape usage.Tier marshals to; valid_price_tiers checks it on every write
-- (the Go code checks the bounds as well, Price.Validate).
--
-- Terms history: eco_subscription_terms holds every set of terms a
-- subscription had, has, or will have, each from an instant on. An upgrade
-- adds an entry from the instant it was made; a downgrade an entry from the
-- end of the running period, mirrored in eco_subscriptions.next_* until it
-- takes over (promote_due_terms copies it into the current columns). The
-- overage job prices each part of a period under the entry in force then.
-- Existing subscriptions get one entry, their terms of today from their
-- anchor: what they were billed with so far.
--
-- The ledger: each row keeps the lines it was priced with (one per part of
-- the period under one set of terms, usage.Line as JSON), the invoice
-- item's description as sent (Stripe refuses a reused idempotency key with
-- other parameters, so a retry must send the same text), the Stripe
-- customers it was sent to, and how often an admin retried it. Dry runs
-- write no rows any more (see below); eco_overage_progress says up to where
-- every closed period of a subscription has its rows, so that a run after
-- dry runs bills every period not billed yet, however old.

-- +goose Up

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

ALTER TABLE eco_plans
    ADD COLUMN price_model text NOT NULL DEFAULT 'package'
        CHECK (price_model IN ('per_unit', 'package', 'graduated', 'volume')),
    ADD COLUMN price_tiers jsonb CHECK (valid_price_tiers(price_tiers)),
    ADD CONSTRAINT eco_plans_price_tiers CHECK ((price_model IN ('graduated', 'volume')) = (price_tiers IS NOT NULL));

COMMENT ON COLUMN eco_plans.price_model IS
    'how calls above the included ones are priced: per_unit (unit price per unit size calls, prorated), package (whole units of unit size calls), graduated or volume (price_tiers)';

-- Per-user overrides of the price: NULL keeps the plan's. Whether a model
-- and its tiers go together is checked against the plan, in Go.
ALTER TABLE eco_subscriptions
    ADD COLUMN price_model text CHECK (price_model IN ('per_unit', 'package', 'graduated', 'volume')),
    ADD COLUMN price_tiers jsonb CHECK (valid_price_tiers(price_tiers)),
    ADD COLUMN next_plan_id text REFERENCES eco_plans (plan_id),
    ADD COLUMN next_overrides jsonb CHECK (jsonb_typeof(next_overrides) = 'object'),
    ADD COLUMN next_from timestamptz,
    ADD CONSTRAINT eco_subscriptions_next CHECK (
        (next_plan_id IS NULL) = (next_from IS NULL) AND (next_plan_id IS NULL) = (next_overrides IS NULL));

COMMENT ON COLUMN eco_subscriptions.next_plan_id IS
    'a downgrade waiting for the end of the running period (next_from), with its overrides (usage.Overrides as JSON)';

CREATE INDEX eco_subscriptions_next_idx ON eco_subscriptions (next_from) WHERE next_from IS NOT NULL;

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

INSERT INTO eco_subscription_terms (user_id, effective_from, plan_id, overrides, change, requested_at, requested_by)
SELECT user_id, period_anchor, plan_id,
       jsonb_strip_nulls(jsonb_build_object(
           'included_calls', included_calls, 'hard_limit', hard_limit, 'rate_per_second', rate_per_second,
           'burst', burst, 'overage_unit_size', overage_unit_size, 'overage_unit_price', overage_unit_price,
           'currency', currency)),
       'start', created_at, 'migration 00011'
  FROM eco_subscriptions;

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

-- The plan audit also says which kind of change was made and when the new
-- terms start.
ALTER TABLE eco_plan_audit
    ADD COLUMN change text CHECK (change IN ('start', 'upgrade', 'downgrade', 'same')),
    ADD COLUMN effective_at timestamptz;

-- Dry runs wrote rows with status dry_run, the real idempotency key and
-- seq 0, and PeriodStates counted their amounts as charged: the next real
-- run found nothing left to bill, for that period, forever. A dry run now
-- reports what a real run would write and writes nothing; the old rows go,
-- and the status with them. Their periods have no base row any more, and
-- eco_overage_progress starts empty, so the next real run bills them.
DELETE FROM eco_overage_ledger WHERE status = 'dry_run';
ALTER TABLE eco_overage_ledger
    DROP CONSTRAINT eco_overage_ledger_status_check,
    ADD CONSTRAINT eco_overage_ledger_status_check CHECK (status IN ('pending', 'billed', 'failed', 'skipped')),
    ADD COLUMN lines jsonb CHECK (jsonb_typeof(lines) = 'array'),
    ADD COLUMN description text NOT NULL DEFAULT '',
    ADD COLUMN sent_to text[] NOT NULL DEFAULT '{}',
    ADD COLUMN retries integer NOT NULL DEFAULT 0 CHECK (retries >= 0);

-- A row is updated two or three times after its insert (claimed, maybe
-- released, marked) and is wider now that it carries its lines: free room
-- in each page lets those updates stay on the page (HOT) instead of
-- touching the table's indexes. (Moving the lines out of line, TOAST,
-- measured no better: what the updates saved, the inserts paid.)
ALTER TABLE eco_overage_ledger SET (fillfactor = 50);

-- Claims take the oldest pending rows: an index in that order over the
-- pending rows alone lets a claim of 100 read about 100 entries, where the
-- index on status alone made every claim read and sort every pending row.
DROP INDEX eco_overage_ledger_status_idx;
CREATE INDEX eco_overage_ledger_pending_idx ON eco_overage_ledger (created_at, ledger_id) WHERE status = 'pending';

COMMENT ON COLUMN eco_overage_ledger.lines IS
    'the period''s pricing as of this row: each part under one set of terms with its plan, price, included share, calls and amount (usage.Line); NULL on rows from before migration 00011, which priced the whole period as a package';
COMMENT ON COLUMN eco_overage_ledger.sent_to IS
    'the Stripe customers the row was claimed for, first first: it is looked up under them before it is sent again';

-- The rows written before keep the description they were (or will be)
-- sent with: the text the code of that time built.
UPDATE eco_overage_ledger SET description = format('API overage%s: %s calls above %s included, period %s – %s',
        CASE WHEN seq > 0 THEN ' adjustment ' || seq END,
        greatest(0, used_calls - included_calls), included_calls,
        to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
        to_char((period_end - interval '1 microsecond') AT TIME ZONE 'UTC', 'YYYY-MM-DD'));

-- Rows tried before were sent to the customer the subscription has now
-- (the best knowledge there is).
UPDATE eco_overage_ledger l SET sent_to = ARRAY[s.stripe_customer_id]
  FROM eco_subscriptions s
 WHERE s.user_id = l.user_id AND l.attempts > 0 AND s.stripe_customer_id IS NOT NULL;

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

-- +goose Down
DROP TABLE eco_overage_audit;
DROP TABLE eco_overage_progress;
DROP INDEX eco_overage_ledger_pending_idx;
CREATE INDEX eco_overage_ledger_status_idx ON eco_overage_ledger (status) WHERE status = 'pending';
ALTER TABLE eco_overage_ledger RESET (fillfactor);
ALTER TABLE eco_overage_ledger
    DROP COLUMN retries, DROP COLUMN sent_to, DROP COLUMN description, DROP COLUMN lines,
    DROP CONSTRAINT eco_overage_ledger_status_check,
    ADD CONSTRAINT eco_overage_ledger_status_check CHECK (status IN ('pending', 'billed', 'failed', 'skipped', 'dry_run'));
ALTER TABLE eco_plan_audit DROP COLUMN effective_at, DROP COLUMN change;
DROP FUNCTION promote_due_terms(timestamptz, uuid);
DROP TABLE eco_subscription_terms;
DROP INDEX eco_subscriptions_next_idx;
ALTER TABLE eco_subscriptions
    DROP CONSTRAINT eco_subscriptions_next,
    DROP COLUMN next_from, DROP COLUMN next_overrides, DROP COLUMN next_plan_id,
    DROP COLUMN price_tiers, DROP COLUMN price_model;
ALTER TABLE eco_plans
    DROP CONSTRAINT eco_plans_price_tiers,
    DROP COLUMN price_tiers, DROP COLUMN price_model;
DROP FUNCTION valid_price_tiers(jsonb);

-- Billing invariants (docs/overage.md, "Invariants").
--
-- Every subscription is billable: a subscription has terms from its period
-- anchor on. A row inserted without them (by SQL, migrated from another
-- system) gets its first entry from its own columns at its anchor, at
-- commit (a transaction that inserts both keeps its own); a transaction
-- that would leave a subscription without terms from its anchor on (its
-- terms deleted, its anchor moved before them) is refused at commit.
-- Subscriptions that have none today get them now.
--
-- The plan audit keeps the terms before and after each change side by side
-- (usage.Terms as JSON: plan, overrides, the plan with them applied) and
-- what changed.
--
-- The ledger's lines: each line now counts the period's included calls in
-- whole, the segments of a period drawing on them in order
-- (usage.Line). The lines written before counted a share of them prorated
-- by days: they are marked "prorated", so that a segment billed under that
-- rule keeps its terms but not its share when late usage prices it again.

-- +goose Up

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

INSERT INTO eco_subscription_terms (user_id, effective_from, plan_id, overrides, change, requested_at, requested_by)
SELECT s.user_id, s.period_anchor, s.plan_id,
       jsonb_strip_nulls(jsonb_build_object(
           'included_calls', s.included_calls, 'hard_limit', s.hard_limit, 'rate_per_second', s.rate_per_second,
           'burst', s.burst, 'overage_unit_size', s.overage_unit_size, 'overage_unit_price', s.overage_unit_price,
           'currency', s.currency, 'price_model', s.price_model, 'tiers', s.price_tiers)),
       'start', s.created_at, 'migration 00012'
  FROM eco_subscriptions s
 WHERE NOT EXISTS (SELECT 1 FROM eco_subscription_terms t WHERE t.user_id = s.user_id AND t.effective_from <= s.period_anchor)
ON CONFLICT (user_id, effective_from) DO NOTHING;

ALTER TABLE eco_plan_audit
    ADD COLUMN before jsonb,
    ADD COLUMN after jsonb,
    ADD COLUMN changed text[];

COMMENT ON COLUMN eco_plan_audit.before IS
    'the terms in force when the change was made (usage.Terms as JSON; null for a new subscription)';
COMMENT ON COLUMN eco_plan_audit.after IS
    'the terms the change asked for, from effective_at (usage.Terms as JSON)';

UPDATE eco_overage_ledger
   SET lines = (SELECT jsonb_agg(l || '{"prorated": true}' ORDER BY i) FROM jsonb_array_elements(lines) WITH ORDINALITY AS e(l, i))
 WHERE lines IS NOT NULL AND jsonb_array_length(lines) > 0;

-- +goose Down
UPDATE eco_overage_ledger
   SET lines = (SELECT jsonb_agg(l - 'prorated' ORDER BY i) FROM jsonb_array_elements(lines) WITH ORDINALITY AS e(l, i))
 WHERE lines IS NOT NULL AND jsonb_array_length(lines) > 0;
ALTER TABLE eco_plan_audit DROP COLUMN changed, DROP COLUMN after, DROP COLUMN before;
DROP TRIGGER eco_subscription_terms_cover ON eco_subscription_terms;
DROP TRIGGER eco_subscriptions_terms_cover ON eco_subscriptions;
DROP FUNCTION eco_subscription_terms_cover();

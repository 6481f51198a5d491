-- Billing periods start on whole seconds (1. Plans, subscriptions; 7.
-- Overage billing).
--
-- A period starts at its subscription's anchor, and a ledger row is named
-- by its user, period start and seq. Stripe keeps an invoice item's period
-- in whole seconds, and a run finds the row of an item it holds (the
-- reconciliation, the lookup before a create) by that period. An anchor
-- with a fraction of a second (written by SQL: now() gives microseconds)
-- made periods Stripe could not name: an item whose answer was lost was
-- adopted for a period starting a fraction earlier, whose row id (derived
-- from the day) was its own row's, and every run stopped on that conflict
-- while the item was in the span a run reconciles. The database now keeps
-- anchors in whole seconds, cutting off the fraction of any it is given,
-- and the periods, rows and alerts of anchors that had one start on the
-- second as Stripe holds them.

-- +goose Up

-- +goose StatementBegin
CREATE FUNCTION eco_subscriptions_whole_second() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.period_anchor := date_trunc('second', NEW.period_anchor, 'UTC');
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION eco_subscriptions_whole_second() IS
    'keeps period anchors in whole seconds: Stripe keeps an invoice item''s period so, and a run finds an item''s ledger row by its period';

CREATE TRIGGER eco_subscriptions_whole_second BEFORE INSERT OR UPDATE OF period_anchor ON eco_subscriptions
    FOR EACH ROW EXECUTE FUNCTION eco_subscriptions_whole_second();

-- The anchors that had a fraction, with the first terms entry the
-- database gave them at that anchor (it must stay at or before the
-- anchor), and whatever was written for their periods.
UPDATE eco_subscription_terms t
   SET effective_from = date_trunc('second', t.effective_from, 'UTC')
  FROM eco_subscriptions s
 WHERE t.user_id = s.user_id AND t.effective_from = s.period_anchor
   AND s.period_anchor <> date_trunc('second', s.period_anchor, 'UTC');

UPDATE eco_subscriptions
   SET period_anchor = date_trunc('second', period_anchor, 'UTC')
 WHERE period_anchor <> date_trunc('second', period_anchor, 'UTC');

-- A row's lines name their segments by their bounds (a run keeps the
-- terms a segment was billed with by them): the period's own move with it.
UPDATE eco_overage_ledger
   SET period_start = date_trunc('second', period_start, 'UTC'),
       period_end = date_trunc('second', period_end, 'UTC'),
       lines = CASE WHEN jsonb_typeof(lines) = 'array' THEN (
           SELECT coalesce(jsonb_agg(CASE WHEN jsonb_typeof(e.l) = 'object' AND e.l ? 'from' AND e.l ? 'to'
                   THEN e.l || jsonb_build_object(
                       'from', to_jsonb(date_trunc('second', (e.l->>'from')::timestamptz, 'UTC')),
                       'to', to_jsonb(date_trunc('second', (e.l->>'to')::timestamptz, 'UTC')))
                   ELSE e.l END ORDER BY e.i), '[]')
             FROM jsonb_array_elements(lines) WITH ORDINALITY AS e(l, i))
           ELSE lines END
 WHERE period_start <> date_trunc('second', period_start, 'UTC')
    OR period_end <> date_trunc('second', period_end, 'UTC');

UPDATE eco_overage_progress
   SET closed_through = date_trunc('second', closed_through, 'UTC')
 WHERE closed_through <> date_trunc('second', closed_through, 'UTC');

UPDATE eco_usage_alerts
   SET period_start = date_trunc('second', period_start, 'UTC'),
       period_end = date_trunc('second', period_end, 'UTC')
 WHERE period_start <> date_trunc('second', period_start, 'UTC')
    OR period_end <> date_trunc('second', period_end, 'UTC');

-- +goose Down

DROP TRIGGER eco_subscriptions_whole_second ON eco_subscriptions;
DROP FUNCTION eco_subscriptions_whole_second();

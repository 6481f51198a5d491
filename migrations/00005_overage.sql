-- Overage billing: leases so that concurrent runs bill each ledger row once,
-- a note for skipped rows (nothing to charge, or a credit owed after usage
-- fell), and an index for the admin's list by period.

-- +goose Up
ALTER TABLE eco_overage_ledger
    ADD COLUMN lease_owner text,
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN note        text;

COMMENT ON COLUMN eco_overage_ledger.lease_owner IS
    'the billing run that last claimed the row; a run never claims a row twice';
COMMENT ON COLUMN eco_overage_ledger.lease_until IS
    'other runs leave the row alone until then; NULL when not leased';

CREATE INDEX eco_overage_ledger_period_idx ON eco_overage_ledger (period_start, user_id, seq);

-- +goose Down
DROP INDEX eco_overage_ledger_period_idx;
ALTER TABLE eco_overage_ledger
    DROP COLUMN note,
    DROP COLUMN lease_until,
    DROP COLUMN lease_owner;

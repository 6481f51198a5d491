-- A key's GCRA state follows a change of its limit (4. Limits).
--
-- rate_limit_take kept a key's TAT across a change of rate or burst (a
-- plan change): a state written under a slow limit kept a caller refused
-- under a faster one until the slow window was over (a burst of 5 at one
-- call every 100 s, then pro's 50 a second: refused 498 s), and a caller
-- who had just spent a fast burst was admitted more calls at once under a
-- slower one. Each key now keeps the tolerance (interval * burst) its TAT
-- was written under, and a step under another one first reads the TAT as
-- the new limit would have written it: the same share of the burst spent
-- (limits.GCRA.Rescale, the reference).

-- +goose Up

ALTER TABLE eco_rate_limits ADD COLUMN tolerance bigint;

COMMENT ON COLUMN eco_rate_limits.tolerance IS
    'the GCRA tolerance (interval * burst, microseconds) the tat was written under; NULL for keys written before it was kept';

-- rate_limit_rescale is limits.GCRA.Rescale: the TAT p_tat, written under
-- tolerance p_tolerance (NULL: not known), as a limit of tolerance p_new
-- reads it at p_now: the caller has spent the same share of the new burst
-- as of the old, (p_tat - p_now) / p_tolerance at most 1, rounded down; a
-- TAT of unknown tolerance counts as at most the whole new burst spent.
-- +goose StatementBegin
CREATE FUNCTION rate_limit_rescale(p_tat bigint, p_tolerance bigint, p_now bigint, p_new bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_tat <= p_now OR p_tolerance = p_new THEN p_tat
        WHEN p_tolerance IS NULL OR p_tolerance <= 0 THEN least(p_tat, p_now + p_new)
        ELSE p_now + div(least(p_tat - p_now, p_tolerance)::numeric * p_new, p_tolerance)::bigint
    END
$$;
-- +goose StatementEnd

-- rate_limit_take as in the baseline, on the stored TAT rescaled to the
-- limit of the call (rate_limit_rescale), which it stores with that
-- limit's tolerance whether the call is admitted or not:
--
--   tat0     = max(rescaled tat, now)        (a fresh key has tat0 = now)
--   new_tat  = tat0 + interval * cost
--   allowed  = new_tat - interval * burst <= now
--
-- Refused: the rescaled TAT is kept, so that the next step does not
-- rescale it again.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION rate_limit_take(p_key text, p_now bigint, p_interval bigint, p_burst bigint, p_cost bigint,
    OUT allowed boolean, OUT remaining bigint, OUT reset_us bigint, OUT retry_us bigint)
-- plpgsql, not sql: PostgreSQL before 18 plans a non-inlined SQL function's
-- statement on every call; plpgsql caches the plan per session.
LANGUAGE plpgsql AS $$
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
-- +goose StatementEnd

-- +goose Down

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION rate_limit_take(p_key text, p_now bigint, p_interval bigint, p_burst bigint, p_cost bigint,
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

DROP FUNCTION rate_limit_rescale(bigint, bigint, bigint, bigint);

ALTER TABLE eco_rate_limits DROP COLUMN tolerance;

-- Voltaro 0013: Local Authorization Lists (the Local Auth List Management profile).
--
-- One row per charge point whose list Voltaro has dealt with: the list the charger holds as
-- far as Voltaro knows (its version and entries, from the SendLocalList updates it accepted
-- and the versions it reported), and where keeping it in sync stands. Like the history
-- tables, no foreign key: a charger removed and registered again under the same id is
-- asked for its list version before anything is assumed.

CREATE TABLE local_lists (
    charge_point_id   text PRIMARY KEY,
    state             text NOT NULL DEFAULT 'unknown'
                      CHECK (state IN ('unknown', 'synced', 'mismatch', 'failed', 'not_supported')),
    version           integer,          -- the version the charger holds; NULL: not known
    entries           jsonb NOT NULL DEFAULT '{}',  -- {idTag: idTagInfo}, what it holds
    digest            text,             -- fingerprint of entries (compared, not read back)
    size              integer NOT NULL DEFAULT 0,      -- how many entries
    needs_full        boolean NOT NULL DEFAULT true,   -- its entries are not known: send Full
    check_version     boolean NOT NULL DEFAULT true,   -- ask GetLocalListVersion first
    reported_version  integer,          -- its last GetLocalListVersion answer
    reported_at       timestamptz,
    max_length        integer,          -- the LocalAuthListMaxLength its list was cut to
    failures          integer NOT NULL DEFAULT 0,      -- updates failed in a row
    retry_at          timestamptz,      -- after a failure: not before this
    last_status       text,             -- its last SendLocalList answer (or failure)
    updated_at        timestamptz NOT NULL DEFAULT now()
);

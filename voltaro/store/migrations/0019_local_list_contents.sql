-- Voltaro 0019: each distinct local list stored once.
--
-- Until now every charger's row held its whole list (``local_lists.entries``). A fleet whose
-- chargers hold the same 1,000 tags stored them once per charger (~30 KB compressed each,
-- 1.5 GB at 50,000 chargers), and recording an accepted update rewrote the charger's whole
-- value: ~0.75 ms of PostgreSQL's CPU per answer, and the whole value again in the WAL, so
-- one tag changed on a list of 1,000 wrote ~30 KB per charger.
--
-- A list's entries are now stored once, under their digest (the sum of migration 0018, which
-- tells lists apart), in ``local_list_contents``, and a charger's row names the list it holds
-- by that digest. A row of contents never changes once written. An update that gives a
-- charger a list that is not stored yet stores it; the chargers that follow the same way (a
-- fleet getting the same Full list in ten messages, or the same Differential after a tag
-- changed) find it stored and only move their digest. PostgreSQL's CPU per recorded
-- answer went from ~1.0 ms to ~0.3 (benchmarks/README.md, "Local list answers").
--
-- No foreign key from ``local_lists.digest``: checking it locks the referenced row (FOR KEY
-- SHARE), and thousands of chargers move to the same list at once. Contents no charger holds
-- are deleted by the profile's task ``forget_unused_lists`` (once an hour on every
-- instance), and only an hour after they were stored. A charger that moves to a list in the instant it is deleted (one
-- held again after more than an hour) is left naming contents that are gone; its entries
-- then count as not known, and its next update is a Full list (``local_list_apply`` and the
-- sync both treat missing contents so).
--
-- An instance of an older Voltaro cannot record list answers on this schema (its statements
-- name ``entries``): upgrade every instance of an installation together.

CREATE TABLE local_list_contents (
    digest      text PRIMARY KEY,    -- 'sum:<decimal>' (migration 0018) of entries
    entries     jsonb NOT NULL,      -- {idTag: idTagInfo}
    size        integer NOT NULL,    -- how many entries
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- Out of line but not compressed: recording an update looks a list up several times (?|,
-- ?), and each look-up of a compressed value decompressed all of it again (~0.1 ms for 1,000
-- entries). A list is stored once, so the space (~80 KB per 1,000 entries) does not matter.
ALTER TABLE local_list_contents ALTER COLUMN entries SET STORAGE EXTERNAL;

-- A digest of the form before 0018 (written by an instance not yet upgraded since) is
-- recomputed first: the contents are stored under the sum.
UPDATE local_lists SET digest = local_list_digest(entries)
WHERE digest IS NOT NULL AND digest NOT LIKE 'sum:%';

INSERT INTO local_list_contents (digest, entries, size)
SELECT DISTINCT ON (digest) digest, entries, size
FROM local_lists WHERE digest IS NOT NULL
ORDER BY digest;

ALTER TABLE local_lists DROP COLUMN entries;

-- The list that the list ``held`` (its digest; NULL: empty) becomes when a charger accepts
-- an update: a Full (``is_full``) replaces it by ``sets``; a Differential removes the tags
-- ``removed`` and sets the entries ``sets`` ({idTag: idTagInfo}); ``touched`` is every tag
-- the update names. ``added`` is the sum of ``sets``' hashes (as ``local_list_hashes``
-- computes them), computed by Voltaro: hashing 100 entries here took ~0.5 ms, the update's
-- other work ~0.3, and the chargers of a fleet are sent the same messages, whose sums
-- Voltaro keeps. Returns the new list's digest and size, its contents stored when no list
-- of that digest is; both NULL when ``held``'s contents are gone (see above): what the
-- charger holds after a Differential is then not known.
--
-- Of the held entries only those the update touches are hashed, and only when it touches
-- one at all (``?|``): adding tags, as the messages after a Full's first do, hashes none.
-- A few are looked up one by one; many are filtered from one read of the list. The held
-- list is read, never written: the new one is built only when it is not stored.
CREATE FUNCTION local_list_apply(
    held text, sets jsonb, touched text[], removed text[], is_full boolean, added numeric,
    OUT list_digest text, OUT list_size integer)
    LANGUAGE plpgsql
    AS $$
DECLARE
    base jsonb := '{}';
    base_size integer := 0;
    taken record;
BEGIN
    IF NOT is_full AND held IS NOT NULL THEN
        SELECT c.entries, c.size INTO base, base_size
        FROM local_list_contents c WHERE c.digest = held;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    IF NOT base ?| touched THEN
        SELECT 0::bigint AS present, 0::numeric AS hashes INTO taken;
    ELSIF cardinality(touched) <= 16 THEN  -- each looked up (each ? reads the list anew)
        SELECT * INTO taken FROM local_list_hashes(
            (SELECT jsonb_object_agg(tag, base -> tag) FROM unnest(touched) AS tag
             WHERE base ? tag),
            NULL);
    ELSE  -- the list read once, its entries filtered
        SELECT * INTO taken FROM local_list_hashes(base, touched);
    END IF;
    list_digest := local_list_digest_moved(
        CASE WHEN is_full THEN 'sum:0' ELSE coalesce(held, 'sum:0') END, added, taken.hashes);
    list_size := base_size - taken.present + (SELECT count(*) FROM jsonb_object_keys(sets));
    IF NOT EXISTS (SELECT 1 FROM local_list_contents c WHERE c.digest = list_digest) THEN
        INSERT INTO local_list_contents (digest, entries, size)
        VALUES (list_digest, (base - removed) || sets, list_size)
        ON CONFLICT DO NOTHING;
    END IF;
END
    $$;

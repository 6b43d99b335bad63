-- Voltaro 0018: a local list's digest that an accepted update changes by what it changed.
--
-- Until now ``local_lists.digest`` was a hash of the whole list, so recording a charger's
-- accepted SendLocalList read the whole list into Python, applied the update, hashed it all
-- and wrote it all back: a list of N tags sent in k messages cost O(N * k), with a pool
-- connection held. The digest is now the sum, modulo 2^128, of one hash per entry, written
-- 'sum:<decimal>': order does not matter, and an update adds the hashes of the entries it
-- sets and takes away those of the entries it replaces or removes (the update's entries are
-- changed in SQL too, ``-`` and ``||`` on the jsonb; see voltaro/store/local_lists.py).
--
-- An entry's hash (it MUST agree with voltaro.central.local_list_entries.entry_hash, which
-- computes the wanted lists' digests; a test checks): the first 16 bytes of the SHA-256 of
-- its id tag and then, for each of idTagInfo's keys present, in this (byte) order,
-- expiryDate, parentIdTag and status (the schema's keys, all strings, no others allowed),
-- the key and its value; each as a netstring (length in UTF-8 bytes, ':', the text); read
-- as a big-endian number.
--
-- The digests written in the old form are recomputed here, in the migration's transaction,
-- so no charger's list looks out of sync after the upgrade (which would send a Full list to
-- the whole fleet at once): a few milliseconds per list of 1,000 tags. A digest of the old
-- form written later (an instance not yet upgraded) is recomputed from the whole list at
-- that charger's next accepted update.
--
-- Written as one query over the entries (one call per list, not per entry: a SQL function
-- called per entry costs ~40 us, the hash itself ~3 us), in PL/pgSQL, whose plans are kept
-- for the session (a SQL function's are made again at every call).

-- How many of ``entries``' tags are in ``tags`` (all of them: NULL) and the sum of their
-- hashes (not reduced).
CREATE FUNCTION local_list_hashes(entries jsonb, tags text[])
    RETURNS TABLE (present bigint, hashes numeric)
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $$
BEGIN
    -- Each half of the 16 bytes as a signed bigint (summed fast): one below zero is that
    -- number minus 2^64, added back by the counts.
    RETURN QUERY
    SELECT count(*),
           (coalesce(sum(hi), 0) + count(*) FILTER (WHERE hi < 0) * 18446744073709551616)
               * 18446744073709551616
           + coalesce(sum(lo), 0) + count(*) FILTER (WHERE lo < 0) * 18446744073709551616
    FROM (
        SELECT ('x' || encode(substr(h, 1, 8), 'hex'))::bit(64)::bigint AS hi,
               ('x' || encode(substr(h, 9, 8), 'hex'))::bit(64)::bigint AS lo
        FROM (
            SELECT sha256(convert_to(
                       octet_length(convert_to(key, 'UTF8')) || ':' || key
                       || coalesce('10:expiryDate' || octet_length(convert_to(
                              value ->> 'expiryDate', 'UTF8')) || ':' || (value ->> 'expiryDate'), '')
                       || coalesce('11:parentIdTag' || octet_length(convert_to(
                              value ->> 'parentIdTag', 'UTF8')) || ':' || (value ->> 'parentIdTag'), '')
                       || coalesce('6:status' || octet_length(convert_to(
                              value ->> 'status', 'UTF8')) || ':' || (value ->> 'status'), ''),
                       'UTF8')) AS h
            FROM jsonb_each(entries)
            WHERE tags IS NULL OR key IN (SELECT unnest(tags))  -- hashed, not a scan per entry
            OFFSET 0  -- each entry hashed once, not once per use of h
        ) AS hashed
    ) AS halves;
END
    $$;

-- The digest of a whole list (entries: {idTag: idTagInfo}).
CREATE FUNCTION local_list_digest(entries jsonb) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
BEGIN
    RETURN (SELECT 'sum:' || (held.hashes % 340282366920938463463374607431768211456)::text
            FROM local_list_hashes(entries, NULL) AS held);
END
    $$;

-- A digest with the hashes ``added`` added and ``taken`` taken away.
CREATE FUNCTION local_list_digest_moved(digest text, added numeric, taken numeric) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
    SELECT 'sum:' || (((substr(digest, 5)::numeric + added - taken)
                       % 340282366920938463463374607431768211456
                       + 340282366920938463463374607431768211456)
                      % 340282366920938463463374607431768211456)::text
    $$;

UPDATE local_lists SET digest = local_list_digest(entries) WHERE digest IS NOT NULL;

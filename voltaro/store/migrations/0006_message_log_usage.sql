-- Voltaro 0006: how much of the message log each charge point holds, for its byte bounds.
--
-- Each entry says its size as counted (`bytes`: the frame's size, or the stored stub's when
-- the payload was truncated, plus a fixed share for its row and index entries; written by
-- Voltaro, which knows it without asking PostgreSQL). Entries logged before this migration
-- have none and are counted by message_log_entry_bytes() from what they occupy.
--
-- message_log_usage keeps the sums per charge point, whoever wrote or deleted the entries
-- (every Voltaro instance on this database, the retention purge, a DELETE by hand):
--
-- - Inserts are on the hot path (a COPY per batch), so their statement-level trigger only
--   appends one row per charge point of the statement to message_log_usage_pending: no
--   index, no row lock, no waiting on a purge. Voltaro's housekeeping folds the pending
--   rows into message_log_usage every few seconds (message_log_usage_fold()).
-- - Deletes (purges) update message_log_usage at once, so that a purge deleting the oldest
--   entries chunk after chunk sees what its previous chunks freed.
-- Both take the usage rows in charge point order: two statements touching the same charge
-- points queue behind each other instead of deadlocking.

ALTER TABLE message_log ADD COLUMN bytes integer;  -- NULL: logged before 0006

CREATE FUNCTION message_log_entry_bytes(bytes integer, payload jsonb) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(bytes, pg_column_size(payload) + 256)::bigint $$;

CREATE TABLE message_log_usage (
    charge_point_id  text PRIMARY KEY,
    bytes            bigint NOT NULL,  -- sum of message_log_entry_bytes() of its entries
    entries          bigint NOT NULL
);

CREATE TABLE message_log_usage_pending (  -- inserted, not yet in message_log_usage
    charge_point_id  text NOT NULL,
    bytes            bigint NOT NULL,
    entries          bigint NOT NULL
);

INSERT INTO message_log_usage (charge_point_id, bytes, entries)
SELECT charge_point_id, sum(message_log_entry_bytes(bytes, payload)), count(*)
FROM message_log GROUP BY charge_point_id;

CREATE FUNCTION message_log_usage_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_log_usage_pending (charge_point_id, bytes, entries)
    SELECT charge_point_id, sum(message_log_entry_bytes(bytes, payload)), count(*)
    FROM added GROUP BY charge_point_id;
    RETURN NULL;
END
$$;

CREATE FUNCTION message_log_usage_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_log_usage AS u (charge_point_id, bytes, entries)
    SELECT charge_point_id, -sum(message_log_entry_bytes(bytes, payload)), -count(*)
    FROM removed GROUP BY charge_point_id ORDER BY charge_point_id
    ON CONFLICT (charge_point_id) DO UPDATE
        SET bytes = u.bytes + excluded.bytes, entries = u.entries + excluded.entries;
    RETURN NULL;
END
$$;

CREATE FUNCTION message_log_usage_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_log_usage_pending;
    DELETE FROM message_log_usage;
    RETURN NULL;
END
$$;

CREATE TRIGGER message_log_usage_added AFTER INSERT ON message_log
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION message_log_usage_added();

CREATE TRIGGER message_log_usage_removed AFTER DELETE ON message_log
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION message_log_usage_removed();

CREATE TRIGGER message_log_usage_truncated AFTER TRUNCATE ON message_log
    FOR EACH STATEMENT EXECUTE FUNCTION message_log_usage_truncated();

-- Fold the pending rows into message_log_usage; several instances may run it at once (a
-- pending row is moved by whichever deletes it first). Returns how many rows it folded.
CREATE FUNCTION message_log_usage_fold() RETURNS bigint LANGUAGE sql AS $$
    WITH moved AS (
        DELETE FROM message_log_usage_pending RETURNING charge_point_id, bytes, entries
    ), folded AS (
        INSERT INTO message_log_usage AS u (charge_point_id, bytes, entries)
        SELECT charge_point_id, sum(bytes), sum(entries)
        FROM moved GROUP BY charge_point_id ORDER BY charge_point_id
        ON CONFLICT (charge_point_id) DO UPDATE
            SET bytes = u.bytes + excluded.bytes, entries = u.entries + excluded.entries
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM moved)
$$;

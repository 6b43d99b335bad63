-- Voltaro 0015: the indexes that keep the operators' lists fast at fleet scale (20,000
-- charge points, millions of transactions, status changes and logged frames), and the id
-- tags that chargers presented and Voltaro refused.
--
-- Which list uses which index (a list pages with ORDER BY ... LIMIT/OFFSET, so its default
-- order must come from an index, not from sorting every matching row):
--
-- - charge points: by id, the primary key; the other orders (last seen, status, vendor, ...)
--   and the partial search sort or scan 20,000 short rows, a few milliseconds. No index on
--   last_seen on purpose: it is rewritten for every charger heard every few seconds, and an
--   index on it would make each of those updates write every index of the row (no HOT
--   update). There is no trigram index for a substring search (the embedded PostgreSQL
--   ships without pg_trgm), and at this size none is needed.
-- - transactions, newest first: the primary key; of one charge point (its page links there):
--   transactions_cp; of one id tag (matched case-insensitively): transactions_id_tag; by
--   start time or within from/to: transactions_started.
-- - the message log, newest first, of all chargers: message_log_time; of one charger:
--   message_log_cp (both from 0001, ordered by logged_at then id). No index is added to
--   the message log: every frame pays for each of its indexes.
-- - status history of a charge point, newest first: connector_status_history_cp_time.
-- - refused id tags, last seen first: refused_id_tags_last_seen.
CREATE INDEX transactions_cp ON transactions (charge_point_id, transaction_id);
CREATE INDEX transactions_id_tag ON transactions (lower(id_tag), transaction_id);
CREATE INDEX transactions_started ON transactions (started_at);
CREATE INDEX connector_status_history_cp_time
    ON connector_status_history (charge_point_id, received_at);

-- One row per id tag (case-insensitively: "key" is lower(id_tag)) that an Authorize or a
-- StartTransaction was refused for: why (unknown, blocked, expired, invalid), when it was
-- first and last presented, where last (charge point, the message), and how often.
-- Written in the writer's batches (posted, never awaited by the charger's answer).
CREATE TABLE refused_id_tags (
    key              text PRIMARY KEY,
    id_tag           text NOT NULL,   -- as last presented
    reason           text NOT NULL CHECK (reason IN ('unknown', 'blocked', 'expired', 'invalid')),
    times            bigint NOT NULL,
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL,
    charge_point_id  text NOT NULL,
    action           text NOT NULL    -- Authorize or StartTransaction
);
CREATE INDEX refused_id_tags_last_seen ON refused_id_tags (last_seen);

-- Voltaro 0016: what the dashboard's charts and the stats API read, kept cheap to read at
-- 20,000 chargers and a year of history (benchmarks/aggregates.py measures each query).
--
-- Energy per day (fleet): energy_per_day holds one row per UTC day: the energy of the
-- transactions that stopped that day (energy_wh is final at the stop; negative energy is
-- flagged, not billed, and left out) and how many stopped. A StopTransaction does not
-- update it: that row would be one hot row for every charger's stop, serialising the commits
-- of every instance. Instead a row trigger appends the day to energy_per_day_pending (no
-- index, no lock on a shared row, as message_log_usage_pending in 0006), and Voltaro's
-- housekeeping folds the pending days every minute (energy_per_day_fold(): each pending
-- day is recomputed whole from transactions, through transactions_stopped). A late
-- StopTransaction (queued while the charger was offline) marks its own day, however old.
--
-- Sessions per hour: counted from transactions_started (an index-only scan over the hours
-- asked for). Energy per day of one charge point: transactions_cp_stopped.
--
-- Chargers online and connectors charging over time: fleet_samples, one row per five
-- minutes, written by whichever instance's housekeeping comes first in that period (the
-- primary key keeps the others out). The charger tables hold only the present, and
-- deriving a past count from presence_events would mean replaying every charger's events
-- for every point of the chart. Samples are kept (105,000 rows, some 10 MB, a year).
--
-- A charge point's status history, newest first, and its utilisation (share of time in
-- Charging) read connector_status_history by charge point: connector_status_history_cp_time
-- (0015) for the former, the existing (charge_point_id, connector_id, received_at) for the
-- latter. Sessions per hour reads transactions_started (0015).

-- No index names energy_wh (not even as INCLUDE): every MeterValues updates it on the open
-- transaction, and an indexed column would cost those updates their HOT path.
CREATE INDEX transactions_stopped ON transactions (stopped_at) WHERE stopped_at IS NOT NULL;
CREATE INDEX transactions_cp_stopped ON transactions (charge_point_id, stopped_at)
    WHERE stopped_at IS NOT NULL;

CREATE TABLE energy_per_day (
    day        date PRIMARY KEY,            -- UTC
    energy_wh  double precision NOT NULL,   -- of the transactions stopped that day, >= 0 each
    sessions   integer NOT NULL             -- transactions stopped that day
);

CREATE TABLE energy_per_day_pending (      -- days to recompute
    day  date NOT NULL
);

CREATE FUNCTION energy_per_day_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.stopped_at IS NOT NULL THEN
        INSERT INTO energy_per_day_pending VALUES ((OLD.stopped_at AT TIME ZONE 'UTC')::date);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.stopped_at IS NOT NULL THEN
        INSERT INTO energy_per_day_pending VALUES ((NEW.stopped_at AT TIME ZONE 'UTC')::date);
    END IF;
    RETURN NULL;
END
$$;

-- The running energy of open transactions changes with every MeterValues: the WHEN
-- clauses leave those updates alone (no function call, no row).
CREATE TRIGGER energy_per_day_inserted AFTER INSERT ON transactions
    FOR EACH ROW WHEN (NEW.stopped_at IS NOT NULL)
    EXECUTE FUNCTION energy_per_day_mark();
CREATE TRIGGER energy_per_day_updated AFTER UPDATE OF stopped_at, energy_wh ON transactions
    FOR EACH ROW WHEN (OLD.stopped_at IS DISTINCT FROM NEW.stopped_at
                       OR (NEW.stopped_at IS NOT NULL
                           AND OLD.energy_wh IS DISTINCT FROM NEW.energy_wh))
    EXECUTE FUNCTION energy_per_day_mark();
CREATE TRIGGER energy_per_day_deleted AFTER DELETE ON transactions
    FOR EACH ROW WHEN (OLD.stopped_at IS NOT NULL)
    EXECUTE FUNCTION energy_per_day_mark();

CREATE FUNCTION energy_per_day_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM energy_per_day_pending;
    DELETE FROM energy_per_day;
    RETURN NULL;
END
$$;

CREATE TRIGGER energy_per_day_truncated AFTER TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION energy_per_day_truncated();

-- Recompute the pending days; returns how many days. One folder at a time (an advisory
-- lock; another instance trying meanwhile skips its turn): two folders with different
-- snapshots could otherwise each write a day, the older snapshot last. Pending rows of
-- stops not yet committed when the fold reads stay for the next fold.
CREATE FUNCTION energy_per_day_fold() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('voltaro energy_per_day_fold')) THEN
        RETURN 0;
    END IF;
    WITH moved AS (
        DELETE FROM energy_per_day_pending RETURNING day
    ), days AS (
        SELECT DISTINCT day FROM moved
    ), totals AS (
        SELECT d.day,
               coalesce(sum(t.energy_wh) FILTER (WHERE t.energy_wh >= 0), 0) AS energy_wh,
               count(t.stopped_at) AS sessions
        FROM days AS d
        LEFT JOIN transactions AS t
            ON t.stopped_at >= d.day::timestamp AT TIME ZONE 'UTC'
           AND t.stopped_at < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
        GROUP BY d.day
    ), written AS (
        INSERT INTO energy_per_day AS e (day, energy_wh, sessions)
        SELECT day, energy_wh, sessions FROM totals
        ON CONFLICT (day) DO UPDATE
            SET energy_wh = excluded.energy_wh, sessions = excluded.sessions
        RETURNING 1
    )
    SELECT count(*) INTO folded FROM written;
    RETURN folded;
END
$$;

CREATE TABLE fleet_samples (
    at             timestamptz PRIMARY KEY,  -- the start of the five minutes sampled
    charge_points  integer NOT NULL,
    online         integer NOT NULL,
    charging       integer NOT NULL          -- connectors (not 0) Charging, of online chargers
);

-- Take this period's sample unless an instance already has; returns whether it did.
CREATE FUNCTION fleet_samples_take(period interval) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    bucket timestamptz := date_bin(period, now(), timestamptz '2000-01-01 00:00:00+00');
BEGIN
    IF EXISTS (SELECT 1 FROM fleet_samples WHERE at = bucket) THEN
        RETURN false;
    END IF;
    INSERT INTO fleet_samples (at, charge_points, online, charging)
    SELECT bucket, count(*), count(*) FILTER (WHERE online),
           (SELECT count(*) FROM connectors AS c JOIN charge_points AS p
                ON p.id = c.charge_point_id
            WHERE p.online AND c.connector_id > 0 AND c.status = 'Charging')
    FROM charge_points
    ON CONFLICT (at) DO NOTHING;
    RETURN FOUND;
END
$$;

-- Sampled values are stored one row per message (a MeterValues, or a StopTransaction's
-- transactionData): its values as one jsonb array, where there was one row per sampled
-- value. A charger's MeterValues usually carries ten or more values and is never read
-- partially, and per row PostgreSQL pays a heap tuple, two index entries and their WAL:
-- under benchmark workload (a) the database's CPU per message fell from ~0.085 ms to
-- ~0.053 ms (three alternating pairs, README "Performance analysis").
--
-- `meter_values` stays readable as before, now a view with one row per sampled value; its
-- per-value `id` becomes (set_id, ordinal).
CREATE TABLE meter_value_sets (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    charge_point_id  text NOT NULL,
    connector_id     integer NOT NULL,
    transaction_id   integer,
    received_at      timestamptz NOT NULL,
    source           text NOT NULL,  -- MeterValues or StopTransaction (transactionData)
    -- [[sampled_at, value, context, format, measurand, phase, location, unit], ...]
    -- as sent: null = field omitted; see meter_values_effective for OCPP 1.6's defaults
    sampled_values   jsonb NOT NULL
);
CREATE INDEX meter_value_sets_cp ON meter_value_sets (charge_point_id, received_at);
CREATE INDEX meter_value_sets_tx ON meter_value_sets (transaction_id)
    WHERE transaction_id IS NOT NULL;

-- What was stored before: one set per old row, in the order stored.
INSERT INTO meter_value_sets (charge_point_id, connector_id, transaction_id, received_at,
                              source, sampled_values)
SELECT charge_point_id, connector_id, transaction_id, received_at, source,
       jsonb_build_array(jsonb_build_array(sampled_at, value, context, format, measurand,
                                           phase, location, unit))
FROM meter_values
ORDER BY id;

DROP VIEW meter_values_effective;
DROP TABLE meter_values;

CREATE VIEW meter_values AS
SELECT s.id AS set_id, e.ordinal, s.charge_point_id, s.connector_id, s.transaction_id,
       (e.v->>0)::timestamptz AS sampled_at, s.received_at, s.source,
       e.v->>1 AS value, e.v->>2 AS context, e.v->>3 AS format, e.v->>4 AS measurand,
       e.v->>5 AS phase, e.v->>6 AS location, e.v->>7 AS unit
FROM meter_value_sets AS s,
     jsonb_array_elements(s.sampled_values) WITH ORDINALITY AS e(v, ordinal);

CREATE VIEW meter_values_effective AS
SELECT set_id, ordinal, charge_point_id, connector_id, transaction_id, sampled_at,
       received_at, source, value,
       coalesce(context, 'Sample.Periodic') AS context,
       coalesce(format, 'Raw') AS format,
       coalesce(measurand, 'Energy.Active.Import.Register') AS measurand,
       phase,
       coalesce(location, 'Outlet') AS location,
       coalesce(unit, 'Wh') AS unit
FROM meter_values;

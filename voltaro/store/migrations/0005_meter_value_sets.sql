-- Sampled values are stored one row per message (a MeterValues, or a StopTransaction's
-- transactionData): its meterValue list as sent, where there was one row per sampled
-- value. A charger's MeterValues usually carries ten or more values and is never read
-- partially, and per row PostgreSQL pays a heap tuple, two index entries and their WAL:
-- under benchmark workload (a) the database's CPU per message fell from ~0.085 ms to
-- ~0.053 ms (three alternating pairs; README, "Simulator and benchmarks").
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
    -- the meterValue list as sent, each timestamp checked and normalised to UTC:
    -- [{"timestamp": ..., "sampledValue": [{"value": ..., "measurand": ...}, ...]}, ...]
    -- (fields omitted stay omitted; see meter_values_effective for OCPP 1.6's defaults)
    meter_value      jsonb NOT NULL
);
CREATE INDEX meter_value_sets_cp ON meter_value_sets (charge_point_id, received_at);
CREATE INDEX meter_value_sets_tx ON meter_value_sets (transaction_id)
    WHERE transaction_id IS NOT NULL;

-- What was stored before: one set per old row, in the order stored.
INSERT INTO meter_value_sets (charge_point_id, connector_id, transaction_id, received_at,
                              source, meter_value)
SELECT charge_point_id, connector_id, transaction_id, received_at, source,
       jsonb_build_array(jsonb_build_object(
           'timestamp', sampled_at,
           'sampledValue', jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
               'value', value, 'context', context, 'format', format, 'measurand', measurand,
               'phase', phase, 'location', location, 'unit', unit)))))
FROM meter_values
ORDER BY id;

DROP VIEW meter_values_effective;
DROP TABLE meter_values;

CREATE VIEW meter_values AS
SELECT s.id AS set_id, e.ordinal, s.charge_point_id, s.connector_id, s.transaction_id,
       e.sampled_at, s.received_at, s.source,
       e.v->>'value' AS value, e.v->>'context' AS context, e.v->>'format' AS format,
       e.v->>'measurand' AS measurand, e.v->>'phase' AS phase,
       e.v->>'location' AS location, e.v->>'unit' AS unit
FROM meter_value_sets AS s,
     LATERAL (
         -- ordinal: the sampled value's place in the message, 1, 2, ... across its entries
         SELECT row_number() OVER (ORDER BY m.i, v.j) AS ordinal,
                (m.entry->>'timestamp')::timestamptz AS sampled_at, v.v
         FROM jsonb_array_elements(s.meter_value) WITH ORDINALITY AS m(entry, i),
              jsonb_array_elements(m.entry->'sampledValue') WITH ORDINALITY AS v(v, j)
     ) AS e;

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

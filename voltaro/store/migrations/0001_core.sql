-- Voltaro 0001: the Core Profile.
--
-- Conventions: every time is timestamptz (UTC on the wire, any zone in psql); what a charger
-- sent is kept as sent (a column is NULL when the field was omitted); history tables carry
-- a charge_point_id without a foreign key, so that removing a charge point keeps its history
-- (and its transactions) and a charger re-registered under the same id continues it.

CREATE TABLE charge_points (
    id                        text PRIMARY KEY,
    registration_status       text NOT NULL DEFAULT 'Pending'
                              CHECK (registration_status IN ('Accepted', 'Pending', 'Rejected')),
    password_hash             text,          -- Basic-auth AuthorizationKey, hashed (scrypt)
    lenient                   boolean NOT NULL DEFAULT false,
    -- details of the last BootNotification
    vendor                    text,
    model                     text,
    serial_number             text,
    charge_box_serial_number  text,
    firmware_version          text,
    iccid                     text,
    imsi                      text,
    meter_type                text,
    meter_serial_number       text,
    last_boot_at              timestamptz,
    -- presence
    online                    boolean NOT NULL DEFAULT false,
    last_seen                 timestamptz,
    lenient_deviations        bigint NOT NULL DEFAULT 0,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE boot_notifications (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    charge_point_id      text NOT NULL,
    received_at          timestamptz NOT NULL,
    registration_status  text NOT NULL,   -- what Voltaro answered
    payload              jsonb NOT NULL    -- the request as sent
);
CREATE INDEX boot_notifications_cp ON boot_notifications (charge_point_id, received_at);

-- Connector 0 is the charge point itself.
CREATE TABLE connectors (
    charge_point_id    text NOT NULL,
    connector_id       integer NOT NULL CHECK (connector_id >= 0),
    status             text NOT NULL,
    error_code         text NOT NULL,
    info               text,
    vendor_id          text,
    vendor_error_code  text,
    charger_timestamp  timestamptz,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (charge_point_id, connector_id)
);

CREATE TABLE connector_status_history (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    charge_point_id    text NOT NULL,
    connector_id       integer NOT NULL,
    status             text NOT NULL,
    previous_status    text,
    error_code         text NOT NULL,
    info               text,
    vendor_id          text,
    vendor_error_code  text,
    charger_timestamp  timestamptz,
    received_at        timestamptz NOT NULL,
    unexpected         boolean NOT NULL  -- not an allowed transition of OCPP 1.6 section 4.9
);
CREATE INDEX connector_status_history_cp
    ON connector_status_history (charge_point_id, connector_id, received_at);

-- idTag is a CiString20: case-insensitive, hence the unique index on lower().
CREATE TABLE id_tags (
    id_tag         text PRIMARY KEY,
    status         text NOT NULL DEFAULT 'Accepted'
                   CHECK (status IN ('Accepted', 'Blocked', 'Expired', 'Invalid')),
    expiry_date    timestamptz,
    parent_id_tag  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX id_tags_lower ON id_tags (lower(id_tag));

-- Every change to id_tags is announced, with the new row, to the servers' in-process caches.
-- The payload carries the expiry as epoch seconds so that no session TimeZone can skew it.
CREATE FUNCTION voltaro_id_tags_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('voltaro_id_tags', '{"op":"reload"}');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        IF TG_OP = 'DELETE' OR lower(OLD.id_tag) <> lower(NEW.id_tag) THEN
            PERFORM pg_notify('voltaro_id_tags',
                json_build_object('op', 'delete', 'id_tag', OLD.id_tag)::text);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('voltaro_id_tags', json_build_object(
            'op', 'upsert',
            'id_tag', NEW.id_tag,
            'status', NEW.status,
            'expiry', extract(epoch FROM NEW.expiry_date),
            'parent_id_tag', NEW.parent_id_tag)::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER id_tags_notify AFTER INSERT OR UPDATE OR DELETE ON id_tags
    FOR EACH ROW EXECUTE FUNCTION voltaro_id_tags_notify();
CREATE TRIGGER id_tags_notify_truncate AFTER TRUNCATE ON id_tags
    FOR EACH STATEMENT EXECUTE FUNCTION voltaro_id_tags_notify();

-- transaction_id is the OCPP transactionId: from the identity sequence, never reused.
-- The unique key makes a retried StartTransaction (same content, new message id, maybe after
-- a restart) find the transaction it created the first time.
CREATE TABLE transactions (
    transaction_id     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    charge_point_id    text NOT NULL,
    connector_id       integer NOT NULL,
    id_tag             text NOT NULL,
    id_tag_status      text NOT NULL,   -- the idTagInfo.status answered at start
    started_at         timestamptz NOT NULL,
    meter_start        bigint NOT NULL,   -- Wh; bigint: a lifetime register can pass 2^31
    reservation_id     integer,
    received_at        timestamptz NOT NULL,
    stopped_at         timestamptz,
    meter_stop         bigint,
    stop_reason        text,
    stop_id_tag        text,
    stop_received_at   timestamptz,
    energy_wh          double precision,  -- running while open (register - meter_start), final when stopped
    last_register_wh   double precision,  -- last Energy.Active.Import.Register reading, in Wh
    last_register_at   timestamptz,
    CONSTRAINT transactions_dedup
        UNIQUE (charge_point_id, connector_id, id_tag, started_at, meter_start)
);
CREATE INDEX transactions_open ON transactions (charge_point_id, connector_id)
    WHERE stopped_at IS NULL;

-- Every sampled value, as sent (NULL = field omitted; see meter_values_effective for the
-- defaults of OCPP 1.6). transaction_id is the charger's, without a foreign key.
CREATE TABLE meter_values (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    charge_point_id  text NOT NULL,
    connector_id     integer NOT NULL,
    transaction_id   integer,
    sampled_at       timestamptz NOT NULL,
    received_at      timestamptz NOT NULL,
    source           text NOT NULL,  -- MeterValues or StopTransaction (transactionData)
    value            text NOT NULL,
    context          text,
    format           text,
    measurand        text,
    phase            text,
    location         text,
    unit             text
);
CREATE INDEX meter_values_cp ON meter_values (charge_point_id, sampled_at);
CREATE INDEX meter_values_tx ON meter_values (transaction_id) WHERE transaction_id IS NOT NULL;

CREATE VIEW meter_values_effective AS
SELECT id, charge_point_id, connector_id, transaction_id, sampled_at, received_at, source,
       value,
       coalesce(context, 'Sample.Periodic') AS context,
       coalesce(format, 'Raw') AS format,
       coalesce(measurand, 'Energy.Active.Import.Register') AS measurand,
       phase,
       coalesce(location, 'Outlet') AS location,
       coalesce(unit, 'Wh') AS unit
FROM meter_values;

CREATE TABLE presence_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    charge_point_id  text NOT NULL,
    at               timestamptz NOT NULL,
    online           boolean NOT NULL,
    reason           text NOT NULL
);
CREATE INDEX presence_events_cp ON presence_events (charge_point_id, at);

CREATE TABLE message_log (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at        timestamptz NOT NULL,
    charge_point_id  text NOT NULL,
    direction        text NOT NULL CHECK (direction IN ('in', 'out')),
    message_id       text,
    action           text,
    payload          jsonb,
    error_code       text    -- set for CALLERROR frames
);
CREATE INDEX message_log_time ON message_log (logged_at);
CREATE INDEX message_log_cp ON message_log (charge_point_id, logged_at);

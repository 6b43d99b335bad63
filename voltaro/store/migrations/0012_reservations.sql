-- Voltaro 0012: the Reservation profile (ReserveNow, CancelReservation).
--
-- Voltaro allocates the reservationId (this table's key) before ReserveNow is sent. A
-- reservation's status is where it stands now; every change is also a row of its history.
-- Statuses: Requested (sent, no answer yet), NoAnswer (the command failed: timeout,
-- CALLERROR, not connected), the charger's answer (Accepted, Faulted, Occupied, Rejected,
-- Unavailable), then from Accepted: Used, Cancelled, Expired, ConnectorUnavailable or
-- ConnectorFaulted. Only an Accepted reservation holds its connector.
-- Like the other history tables, no foreign key to charge_points: removing a charge point
-- keeps its reservations.
CREATE TABLE reservations (
    reservation_id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    charge_point_id  text NOT NULL,
    connector_id     integer NOT NULL CHECK (connector_id >= 0),  -- 0: any connector
    id_tag           text NOT NULL,
    parent_id_tag    text,
    expiry_date      timestamptz NOT NULL,
    status           text NOT NULL,
    transaction_id   integer,  -- the transaction that used it
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
-- What holds a connector now (the charger's page, a StartTransaction, a status change).
CREATE INDEX reservations_accepted ON reservations (charge_point_id, connector_id)
    WHERE status = 'Accepted';
-- What runs out next (the expiry task, on every instance).
CREATE INDEX reservations_expiry ON reservations (expiry_date) WHERE status = 'Accepted';
CREATE INDEX reservations_charge_point ON reservations (charge_point_id, reservation_id);

CREATE TABLE reservation_history (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reservation_id  integer NOT NULL REFERENCES reservations ON DELETE CASCADE,
    at              timestamptz NOT NULL,
    status          text NOT NULL,
    detail          text
);
CREATE INDEX reservation_history_reservation ON reservation_history (reservation_id, id);

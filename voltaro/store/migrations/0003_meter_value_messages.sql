-- MeterValues de-duplication: real chargers retry MeterValues with a NEW message id when an
-- answer is lost (e.g. the server died after the commit, before the CALLRESULT went out).
-- One row per stored MeterValues message, keyed by a digest of its content; a retry finds
-- its row and stores nothing again. Rows older than the message-log retention are purged.
CREATE TABLE meter_value_messages (
    charge_point_id  text NOT NULL,
    digest           bytea NOT NULL,
    received_at      timestamptz NOT NULL,
    PRIMARY KEY (charge_point_id, digest)
);
CREATE INDEX meter_value_messages_time ON meter_value_messages (received_at);

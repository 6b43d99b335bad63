-- Security events: what an operator (and later the Security Whitepaper's
-- SecurityEventNotification) needs to see of attacks and misconfigured chargers. First
-- kind: failed Basic-auth logins at the WebSocket handshake. Purged with the message log's
-- retention.
CREATE TABLE security_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at               timestamptz NOT NULL,
    charge_point_id  text,
    remote_address   text,
    kind             text NOT NULL,   -- e.g. 'login failed'
    detail           text
);
CREATE INDEX security_events_at ON security_events (at);
CREATE INDEX security_events_cp ON security_events (charge_point_id, at);

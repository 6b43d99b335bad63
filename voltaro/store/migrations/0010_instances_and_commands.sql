-- Several Voltaro instances (nodes, worker processes) on one database.
--
-- instances: each running instance and its lease. An instance renews its lease while it
-- runs; one whose lease ran out (killed, power cut, cut off) is dead: any other instance
-- marks its chargers offline (unless they reconnected elsewhere). Lease times are the
-- database's clock, so the instances' clocks need not agree.
CREATE TABLE instances (
    id           text PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    alive_until  timestamptz NOT NULL
);

-- commands: an operator command for a charger whose session another instance holds. The
-- asking instance writes the row and notifies the owner (voltaro_commands, the row's id);
-- the owner sends the CALL, writes the outcome and notifies back (voltaro_command_answers).
CREATE TABLE commands (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    charge_point_id    text NOT NULL,
    action             text NOT NULL,
    request            jsonb NOT NULL,
    timeout            double precision NOT NULL,
    requested_by       text NOT NULL,
    owner              text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    taken_at           timestamptz,
    answered_at        timestamptz,
    outcome            text,          -- result | error | invalid | timeout | disconnected | not connected
    answer             jsonb          -- the result, or the failure's details
);
CREATE INDEX commands_waiting ON commands (owner) WHERE taken_at IS NULL;
CREATE INDEX commands_created ON commands (created_at);

-- A charger's session moved to another instance: the instance that held it closes its old
-- connection (the newest connection wins, across instances as within one).
CREATE FUNCTION voltaro_sessions_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.online AND NEW.instance_id IS NOT NULL
       AND NEW.instance_id IS DISTINCT FROM OLD.instance_id THEN
        PERFORM pg_notify('voltaro_sessions', json_build_object(
            'id', NEW.id, 'instance', NEW.instance_id)::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER charge_points_session_moved AFTER UPDATE OF instance_id ON charge_points
    FOR EACH ROW EXECUTE FUNCTION voltaro_sessions_notify();

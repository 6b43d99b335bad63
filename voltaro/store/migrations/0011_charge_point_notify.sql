-- Every change to a charge point that matters to admission (added, registration status,
-- password hash, lenient mode) is announced with the row's admission fields, so that each
-- Voltaro instance keeps its in-memory copy of them right whoever wrote the row: the
-- handshake of a known charger then needs no database read. Removals keep their own
-- trigger (0004); a TRUNCATE tells every instance to reload.
CREATE FUNCTION voltaro_charge_points_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('voltaro_charge_points', json_build_object(
        'op', 'upsert', 'id', NEW.id, 'status', NEW.registration_status,
        'password_hash', NEW.password_hash, 'lenient', NEW.lenient)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER charge_points_added AFTER INSERT ON charge_points
    FOR EACH ROW EXECUTE FUNCTION voltaro_charge_points_changed();

-- Boots and presence update other columns many times a second: only these are announced.
CREATE TRIGGER charge_points_admission_changed
    AFTER UPDATE OF id, registration_status, password_hash, lenient ON charge_points
    FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id
          OR OLD.registration_status IS DISTINCT FROM NEW.registration_status
          OR OLD.password_hash IS DISTINCT FROM NEW.password_hash
          OR OLD.lenient IS DISTINCT FROM NEW.lenient)
    EXECUTE FUNCTION voltaro_charge_points_changed();

-- A renamed charge point's old id is gone.
CREATE FUNCTION voltaro_charge_points_renamed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('voltaro_charge_points',
        json_build_object('op', 'removed', 'id', OLD.id)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER charge_points_renamed AFTER UPDATE OF id ON charge_points
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION voltaro_charge_points_renamed();

CREATE FUNCTION voltaro_charge_points_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('voltaro_charge_points', '{"op": "reload"}');
    RETURN NULL;
END
$$;

CREATE TRIGGER charge_points_truncated AFTER TRUNCATE ON charge_points
    FOR EACH STATEMENT EXECUTE FUNCTION voltaro_charge_points_truncated();

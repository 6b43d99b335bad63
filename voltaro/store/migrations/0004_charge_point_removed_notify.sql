-- A charge point removed by any process (the CLI, SQL by hand, the admin API) is announced,
-- so that the server holding its live connection closes it at once instead of serving a
-- charger that no longer exists until it happens to reconnect.
CREATE FUNCTION voltaro_charge_points_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('voltaro_charge_points',
        json_build_object('op', 'removed', 'id', OLD.id)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER charge_points_notify AFTER DELETE ON charge_points
    FOR EACH ROW EXECUTE FUNCTION voltaro_charge_points_notify();

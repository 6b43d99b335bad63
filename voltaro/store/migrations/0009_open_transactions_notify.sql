-- Every start and stop of a transaction is announced, so that each Voltaro instance keeps
-- its in-memory index of open transactions (ConcurrentTx) right whoever wrote the row: a
-- tag in a transaction on one instance is ConcurrentTx on every other.
CREATE FUNCTION voltaro_transactions_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.stopped_at IS NULL THEN
            PERFORM pg_notify('voltaro_transactions', json_build_object(
                'op', 'started', 'id', NEW.transaction_id, 'id_tag', NEW.id_tag)::text);
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF OLD.stopped_at IS NULL AND NEW.stopped_at IS NOT NULL THEN
            PERFORM pg_notify('voltaro_transactions', json_build_object(
                'op', 'stopped', 'id', NEW.transaction_id)::text);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('voltaro_transactions', json_build_object(
            'op', 'stopped', 'id', OLD.transaction_id)::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER transactions_notify AFTER INSERT OR UPDATE OF stopped_at OR DELETE
    ON transactions FOR EACH ROW EXECUTE FUNCTION voltaro_transactions_notify();

CREATE FUNCTION voltaro_transactions_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('voltaro_transactions', '{"op": "reload"}');
    RETURN NULL;
END
$$;

CREATE TRIGGER transactions_truncated AFTER TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION voltaro_transactions_truncated();

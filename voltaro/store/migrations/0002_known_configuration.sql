-- Voltaro 0002: what the Central System knows of each charger's configuration.
--
-- Filled from GetConfiguration answers (every key the charger reported) and from accepted
-- ChangeConfiguration commands. Like the history tables, no foreign key: removing a charge
-- point does not need to touch it, and re-registering the id finds it again.

CREATE TABLE charge_point_configuration (
    charge_point_id  text NOT NULL,
    key              text NOT NULL,
    value            text,            -- NULL when the charger reported the key without a value
    readonly         boolean,         -- NULL when only known from a ChangeConfiguration
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (charge_point_id, key)
);

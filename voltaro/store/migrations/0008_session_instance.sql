-- Which Voltaro instance holds a charger's live session. An instance (a node, later a worker
-- process) marks offline at start and at shutdown only the chargers it held, and a session
-- that ends marks its charger offline only while the charger is still recorded as its own:
-- a charger that reconnected elsewhere meanwhile stays online there. Rows online before
-- this migration have no instance: the next start of any instance takes them as its own.
ALTER TABLE charge_points ADD COLUMN instance_id text;
ALTER TABLE presence_events ADD COLUMN instance_id text;

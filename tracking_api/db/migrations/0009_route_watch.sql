-- What the correlator remembers between fixes of a shipment in transit: when it left the route
-- corridor, when it stopped and where, its last fix and recent speed (for the ETA).
CREATE TABLE route_watch (
    demand_id        bigint PRIMARY KEY REFERENCES demands (id) ON DELETE CASCADE,
    off_route_since  timestamptz,
    stopped_since    timestamptz,
    stop_lat         double precision,
    stop_lon         double precision,
    last_fix_at      timestamptz NOT NULL,
    speed_kmh_avg    real
);
CREATE INDEX route_watch_last_fix ON route_watch (last_fix_at);

-- Per-customer overrides of the exception thresholds (keys as in crm_link.route_watch.Thresholds).
ALTER TABLE customers ADD COLUMN exception_thresholds jsonb NOT NULL DEFAULT '{}'::jsonb;

ALTER TABLE route_watch ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON route_watch USING (cargotrace_staff() OR demand_id IN (SELECT id FROM demands));
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_all ON route_watch TO %I USING (true) WITH CHECK (true)', current_user);
END $$;

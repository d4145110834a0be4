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
-- Every fix in transit closes what has cleared (off route, stopped, late, silent): find those by demand.
CREATE INDEX exceptions_unresolved_by_demand ON exceptions (demand_id, type) WHERE state <> 'resolved';

-- Per-customer overrides of the exception thresholds (keys as in crm_link.route_watch.Thresholds).
ALTER TABLE customers ADD COLUMN exception_thresholds jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Every ETA that moved by a minute or more, so a change can be told (webhooks) and its accuracy measured.
CREATE TABLE eta_history (
    demand_id    bigint NOT NULL REFERENCES demands (id) ON DELETE CASCADE,
    computed_at  timestamptz NOT NULL,
    eta          timestamptz NOT NULL,
    remaining_m  real NOT NULL,
    speed_kmh    real NOT NULL,
    position_id  bigint,
    PRIMARY KEY (demand_id, computed_at)
);

-- Which vehicle a dispatcher put at a dock door, and when: the second most trusted answer to "which
-- vehicle is at this door" after the vehicle's own tag read there. Staff only.
CREATE TABLE dock_assignments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     text NOT NULL REFERENCES sites (id),
    door_id     text NOT NULL,
    vehicle_id  text NOT NULL REFERENCES vehicles (id),
    valid_from  timestamptz NOT NULL,
    valid_to    timestamptz,
    assigned_by text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX dock_assignments_door ON dock_assignments (site_id, door_id, valid_from DESC);

-- Row-level security (0004): route_watch and eta_history are owned through the demand (probed with
-- EXISTS, as in 0004); dock assignments are staff only.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['route_watch', 'eta_history', 'dock_assignments'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY owner_all ON %I TO %I USING (true) WITH CHECK (true)', t, current_user);
    END LOOP;
    CREATE POLICY tenant ON route_watch
        USING (cargotrace_staff() OR EXISTS (SELECT 1 FROM demands d WHERE d.id = demand_id));
    CREATE POLICY tenant ON eta_history
        USING (cargotrace_staff() OR EXISTS (SELECT 1 FROM demands d WHERE d.id = demand_id));
    CREATE POLICY tenant ON dock_assignments USING (cargotrace_staff());
END $$;

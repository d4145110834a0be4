-- Master data as resources of their own (customers, sites, vehicles, gateways), written through the
-- API by admin and integration keys and by the CLI.

ALTER TABLE customers ADD COLUMN language text NOT NULL DEFAULT 'zh-CN' CHECK (language IN ('zh-CN', 'en'));

-- A site's geofence is its circle (lat, lon, radius_m) or a GeoJSON Polygon; for a polygon the circle
-- columns hold the circle around it, so code that reads the circle keeps working.
ALTER TABLE sites
    ADD COLUMN address text NOT NULL DEFAULT '',
    ADD COLUMN time_zone text NOT NULL DEFAULT 'Asia/Shanghai',
    ADD COLUMN geofence_polygon jsonb;

ALTER TABLE vehicles
    ADD COLUMN plate text NOT NULL DEFAULT '',
    ADD COLUMN carrier text NOT NULL DEFAULT '',
    ADD COLUMN telematics_id text UNIQUE;                  -- JT/T 808 phone number or Teltonika IMEI

CREATE TABLE gateways (
    id          text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('dock', 'vehicle', 'fleet')),
    site_id     text REFERENCES sites (id),
    vehicle_id  text REFERENCES vehicles (id),
    read_points text[] NOT NULL DEFAULT '{}',              -- ids of read_points (site_id/door_id)
    CHECK ((kind = 'dock') = (site_id IS NOT NULL)),
    CHECK ((kind = 'vehicle') = (vehicle_id IS NOT NULL))
);

-- The API writes master data as admin or integration; the route checks the role, row-level security
-- (0004) still keeps customers to their own customer row.
GRANT INSERT, UPDATE, DELETE ON customers, sites, read_points, vehicles, gateways TO cargotrace_api;

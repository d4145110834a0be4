-- Core schema: time series (observations, positions, gateway states) and the relational
-- customer side. Time series get hypertables in 0002 when TimescaleDB is present.

CREATE TABLE tag_observations (
    gateway_id  text        NOT NULL,
    seq         bigint      NOT NULL,
    ts          timestamptz NOT NULL,          -- last_seen: when the passage ended
    epc         text        NOT NULL,          -- upper-case hex as read
    epc_uri     text,                          -- pure identity URI, NULL when not an EPC
    read_point  text        NOT NULL,          -- site_id/door_id
    reader      text        NOT NULL,
    antenna     integer     NOT NULL,
    rssi_dbm    real,
    reads       integer     NOT NULL,
    first_seen  timestamptz NOT NULL,
    direction   text CHECK (direction IN ('in', 'out')),
    -- Commit-order cursor for consumers (crm_link): rows with txid below the oldest running
    -- transaction are all visible, so (txid, id) is a gap-free watermark.
    txid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gateway_id, seq, ts)
);
CREATE INDEX tag_observations_epc_uri_ts ON tag_observations (epc_uri, ts DESC);
CREATE INDEX tag_observations_read_point_ts ON tag_observations (read_point, ts DESC);
CREATE INDEX tag_observations_txid ON tag_observations (txid, id);

CREATE TABLE positions (
    gateway_id  text             NOT NULL,
    seq         bigint           NOT NULL,
    ts          timestamptz      NOT NULL,     -- receiver GPS time
    vehicle_id  text             NOT NULL,
    lat         double precision NOT NULL,
    lon         double precision NOT NULL,
    speed_kmh   real,
    course_deg  real,
    hdop        real,
    sats        smallint,
    quality     smallint,
    alt_m       real,
    txid        xid8             NOT NULL DEFAULT pg_current_xact_id(),
    id          bigint           GENERATED ALWAYS AS IDENTITY,
    received_at timestamptz      NOT NULL DEFAULT now(),
    UNIQUE (gateway_id, seq, ts)
);
CREATE INDEX positions_vehicle_ts ON positions (vehicle_id, ts DESC);
CREATE INDEX positions_txid ON positions (txid, id);

CREATE TABLE gateway_states (
    gateway_id  text        NOT NULL,
    seq         bigint      NOT NULL DEFAULT 0,
    ts          timestamptz NOT NULL,
    state       text        NOT NULL,           -- online | offline | degraded
    payload     jsonb       NOT NULL,
    UNIQUE (gateway_id, seq, ts)
);

CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic       text        NOT NULL,
    payload     bytea       NOT NULL,
    reason      text        NOT NULL
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at);

CREATE TABLE customers (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    service_level text NOT NULL DEFAULT 'standard',
    contact       jsonb NOT NULL DEFAULT '{}'::jsonb,   -- basic information block
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    prefix      text NOT NULL UNIQUE,                 -- public part, shown in lists and logs
    secret_hash text NOT NULL,                        -- SHA-256 of the 256-bit secret part
    role        text NOT NULL CHECK (role IN ('customer', 'dispatcher', 'integration', 'admin')),
    customer_id text REFERENCES customers (id),
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    CHECK ((role = 'customer') = (customer_id IS NOT NULL))
);

CREATE TABLE sites (
    id       text PRIMARY KEY,
    name     text NOT NULL,
    lat      double precision,
    lon      double precision,
    radius_m double precision NOT NULL DEFAULT 300,   -- geofence
    gln      text                                     -- GS1 SGLN for EPCIS export
);

CREATE TABLE read_points (
    id       text PRIMARY KEY,                         -- site_id/door_id
    site_id  text NOT NULL REFERENCES sites (id),
    door_id  text NOT NULL,
    sgln     text,
    UNIQUE (site_id, door_id)
);

CREATE TABLE vehicles (
    id          text PRIMARY KEY,                      -- fleet id, e.g. TRK-042
    name        text NOT NULL DEFAULT '',
    gateway_id  text,
    tag_epc_uri text UNIQUE                            -- the vehicle's own GIAI/GRAI tag
);

CREATE TABLE demands (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id         text NOT NULL REFERENCES customers (id),
    external_ref        text NOT NULL,
    origin_site_id      text REFERENCES sites (id),
    destination_site_id text REFERENCES sites (id),
    destination_lat     double precision,
    destination_lon     double precision,
    destination_radius_m double precision,
    pickup_from         timestamptz,
    pickup_to           timestamptz,
    delivery_from       timestamptz,
    delivery_to         timestamptz,
    rush                boolean NOT NULL DEFAULT false,
    service_level       text NOT NULL DEFAULT 'standard',
    vehicle_id          text REFERENCES vehicles (id),
    planned_route       jsonb,                          -- GeoJSON LineString
    status              text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'loading', 'loaded', 'in_transit', 'arrived', 'delivered')),
    status_at           timestamptz NOT NULL DEFAULT now(),
    eta                 timestamptz,
    eta_computed_at     timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (customer_id, external_ref)
);
CREATE INDEX demands_vehicle_open ON demands (vehicle_id) WHERE status <> 'delivered';

CREATE TABLE demand_items (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    demand_id    bigint NOT NULL REFERENCES demands (id) ON DELETE CASCADE,
    epc_uri      text NOT NULL,                         -- pure identity URI
    expected_qty integer NOT NULL DEFAULT 1,
    loaded_at    timestamptz,
    delivered_at timestamptz,
    UNIQUE (demand_id, epc_uri)
);
CREATE INDEX demand_items_epc_uri ON demand_items (epc_uri);

-- Demand dynamics: every change of a demand record, as the fields before and after.
CREATE TABLE demand_history (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    demand_id  bigint NOT NULL REFERENCES demands (id) ON DELETE CASCADE,
    changed_at timestamptz NOT NULL DEFAULT now(),
    changes    jsonb NOT NULL
);

CREATE TABLE shipment_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    demand_id  bigint NOT NULL REFERENCES demands (id) ON DELETE CASCADE,
    status     text NOT NULL,
    ts         timestamptz NOT NULL,
    biz_step   text,                                    -- GS1 CBV: loading, departing, arriving, receiving
    place      text,                                    -- read point or site
    lat        double precision,
    lon        double precision,
    source     jsonb NOT NULL DEFAULT '{}'::jsonb,      -- ids of the observations / positions behind it
    UNIQUE (demand_id, status)
);

CREATE TABLE exceptions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    demand_id    bigint REFERENCES demands (id) ON DELETE CASCADE,
    vehicle_id   text,
    type         text NOT NULL CHECK (type IN ('misload', 'missing_cargo', 'off_route', 'unplanned_stop',
                                               'late', 'gps_silence', 'wrong_destination')),
    state        text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'resolved')),
    opened_at    timestamptz NOT NULL,
    acknowledged_at timestamptz,
    resolved_at  timestamptz,
    note         text,
    evidence     jsonb NOT NULL DEFAULT '{}'::jsonb
);
-- One incident at a time per (demand, vehicle, type): opened once, not flooded.
CREATE UNIQUE INDEX exceptions_one_open
    ON exceptions (coalesce(demand_id, 0), coalesce(vehicle_id, ''), type) WHERE state <> 'resolved';

CREATE TABLE feedback (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (id),
    demand_id   bigint REFERENCES demands (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('rating', 'inquiry', 'complaint', 'damage')),
    rating      smallint CHECK (rating BETWEEN 1 AND 5),
    text        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_subscriptions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id text REFERENCES customers (id),
    url         text NOT NULL,
    secret      text NOT NULL,
    event_types text[] NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id bigint NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    webhook_id      text NOT NULL UNIQUE,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

-- Durable cursors of event consumers (crm_link correlation).
CREATE TABLE consumer_cursors (
    consumer text PRIMARY KEY,
    txid     xid8   NOT NULL DEFAULT '0'::xid8,
    id       bigint NOT NULL DEFAULT 0
);

-- The fleet's own driving history, for the ETA (crm_link/speed_profile.py, past_trips.py, eta_model.py):
-- how fast the places it drives are passed by hour of week, the trips it completed, and how far off
-- each way of predicting has been. Built incrementally by the CRM worker from `positions`; a plain
-- table on every server (the pairing of consecutive fixes is a window over each vehicle, which a
-- TimescaleDB continuous aggregate cannot express).

-- One row per grid cell (~500 m, crm_link/speed_profile.py) and UTC hour of the week (0 = Monday
-- 00:00, 167 = Sunday 23:00; 168 = every hour of the week together). A pair of consecutive fixes of a
-- vehicle counts in the cell of its midpoint: its metres and seconds (stops shorter than the dwell
-- threshold included, longer stops not: parking is not traffic), and one in the bucket of its speed
-- (5 km/h wide, the last one open), from which the median and percentiles come.
CREATE TABLE speed_profile (
    cell          bigint           NOT NULL,
    hour_of_week  smallint         NOT NULL CHECK (hour_of_week BETWEEN 0 AND 168),
    pairs         integer          NOT NULL,
    metres        double precision NOT NULL,
    seconds       double precision NOT NULL,
    speed_counts  integer[]        NOT NULL,
    PRIMARY KEY (cell, hour_of_week)
);

-- The same over every cell and hour: the fleet's median speed and whether there is history at all.
CREATE TABLE speed_totals (
    one           boolean PRIMARY KEY DEFAULT true CHECK (one),
    pairs         bigint           NOT NULL,
    metres        double precision NOT NULL,
    seconds       double precision NOT NULL,
    speed_counts  bigint[]         NOT NULL,
    folded_at     timestamptz      NOT NULL DEFAULT clock_timestamp()  -- the profile as of: readers' caches
);

-- Each vehicle's last fix folded in, to pair with its next, and the stop it may be in (held back
-- until it ends: only then is it known to be a short stop in traffic or a dwell). A vehicle is known
-- by hashtextextended(vehicle_id, 0): the fold reads fixes as arrays of numbers.
CREATE TABLE speed_profile_tails (
    vehicle_key   bigint PRIMARY KEY,
    ts            timestamptz      NOT NULL,
    lat           double precision NOT NULL,
    lon           double precision NOT NULL,
    still_since   timestamptz,
    still_cell    bigint,
    still_hour    smallint,
    still_pairs   integer,
    still_metres  double precision,
    still_seconds double precision
);

-- Completed drives (from a vehicle leaving a demand's origin to arriving at its destination; one per
-- departure, to the last arrival of the demands it carried), with the path driven: points about 50 m
-- apart, each with the seconds still to go until arrival. The nearest past trips through the truck's
-- place to its destination give the "past trips" ETA; `cells` (those the path passes) finds them.
CREATE TABLE past_trips (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vehicle_id   text        NOT NULL,
    departed_at  timestamptz NOT NULL,
    arrived_at   timestamptz NOT NULL CHECK (arrived_at > departed_at),
    lane         text        NOT NULL,                 -- origin → destination
    path_lat     double precision[],                   -- NULL until built from positions
    path_lon     double precision[],
    path_to_go_s real[],
    cells        bigint[],
    UNIQUE (vehicle_id, departed_at)
);
CREATE INDEX past_trips_cells ON past_trips USING gin (cells);
CREATE INDEX past_trips_unbuilt ON past_trips (id) WHERE cells IS NULL;

-- How far off each method has been, measured on past trips, by time still to go (bucket: 0 = under
-- 15 min, 1 = 15-45 min, 2 = more): the weights of the blend and the p10-p90 band around an ETA.
-- Quantiles are of ln(actual time to go / predicted time to go).
CREATE TABLE eta_calibration (
    method      text     NOT NULL CHECK (method IN ('speed', 'profile', 'past_trips', 'blend')),
    bucket      smallint NOT NULL,
    queries     integer  NOT NULL,
    mae_s       real     NOT NULL,
    q10         real     NOT NULL,
    q90         real     NOT NULL,
    fade_m      real,                                  -- the profile's: how far ahead the live ratio counts
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (method, bucket)
);

-- The band and the method of the ETA where it is kept (nullable: rows written before stay valid).
ALTER TABLE demands
    ADD COLUMN eta_p10 timestamptz,
    ADD COLUMN eta_p90 timestamptz,
    ADD COLUMN eta_method text CHECK (eta_method IN ('speed', 'profile', 'past_trips', 'blend'));
ALTER TABLE eta_history
    ADD COLUMN eta_p10 timestamptz,
    ADD COLUMN eta_p90 timestamptz,
    ADD COLUMN method text CHECK (method IN ('speed', 'profile', 'past_trips', 'blend'));

-- Row-level security (0004): the fleet's history is staff only (it spans every customer's trips).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['speed_profile', 'speed_totals', 'speed_profile_tails', 'past_trips',
                             'eta_calibration'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY owner_all ON %I TO %I USING (true) WITH CHECK (true)', t, current_user);
        EXECUTE format('CREATE POLICY tenant ON %I USING (cargotrace_staff())', t);
    END LOOP;
END $$;

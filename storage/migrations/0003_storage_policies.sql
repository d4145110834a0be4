-- Storage policies and summaries. With TimescaleDB: compression, retention and continuous
-- aggregates (real-time, so the newest hour is always included). Without it: plain views with the
-- same names, columns and answers, so the API and KPIs query one shape either way.
--
-- Compression segments by a column that gives >= 1 000 rows per segment per chunk: vehicle_id for
-- positions (a truck reports ~8 600 kept fixes a day), read_point for observations (a busy door
-- sees thousands of passages a day) - never epc, whose segments would hold a row or two.
-- Retention (400 days of positions and observations, 90 of gateway states) stays far outside the
-- 3-day refresh window of the aggregates, which would otherwise lose history silently.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        ALTER TABLE positions SET (timescaledb.compress, timescaledb.compress_segmentby = 'vehicle_id',
                                   timescaledb.compress_orderby = 'ts DESC');
        ALTER TABLE tag_observations SET (timescaledb.compress, timescaledb.compress_segmentby = 'read_point',
                                          timescaledb.compress_orderby = 'ts DESC');
        PERFORM add_compression_policy('positions', interval '7 days');
        PERFORM add_compression_policy('tag_observations', interval '7 days');
        PERFORM add_retention_policy('positions', interval '400 days');
        PERFORM add_retention_policy('tag_observations', interval '400 days');
        PERFORM add_retention_policy('gateway_states', interval '90 days');
        EXECUTE $v$
            CREATE MATERIALIZED VIEW positions_hourly
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT vehicle_id, time_bucket(interval '1 hour', ts) AS bucket, count(*) AS fixes,
                   last(lat, ts) AS lat, last(lon, ts) AS lon, max(speed_kmh) AS max_speed_kmh
            FROM positions GROUP BY vehicle_id, bucket WITH NO DATA $v$;
        EXECUTE $v$
            CREATE MATERIALIZED VIEW door_throughput_hourly
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT read_point, time_bucket(interval '1 hour', ts) AS bucket, count(*) AS passages,
                   sum(reads) AS raw_reads, count(*) FILTER (WHERE direction = 'out') AS passages_out,
                   count(*) FILTER (WHERE direction = 'in') AS passages_in
            FROM tag_observations GROUP BY read_point, bucket WITH NO DATA $v$;
        PERFORM add_continuous_aggregate_policy('positions_hourly', start_offset => interval '3 days',
                                                end_offset => interval '1 hour', schedule_interval => interval '15 minutes');
        PERFORM add_continuous_aggregate_policy('door_throughput_hourly', start_offset => interval '3 days',
                                                end_offset => interval '1 hour', schedule_interval => interval '15 minutes');
    ELSE
        CREATE VIEW positions_hourly AS
            SELECT vehicle_id, date_bin(interval '1 hour', ts, timestamptz '2000-01-01') AS bucket, count(*) AS fixes,
                   (array_agg(lat ORDER BY ts DESC))[1] AS lat, (array_agg(lon ORDER BY ts DESC))[1] AS lon,
                   max(speed_kmh) AS max_speed_kmh
            FROM positions GROUP BY vehicle_id, bucket;
        CREATE VIEW door_throughput_hourly AS
            SELECT read_point, date_bin(interval '1 hour', ts, timestamptz '2000-01-01') AS bucket,
                   count(*) AS passages, sum(reads) AS raw_reads,
                   count(*) FILTER (WHERE direction = 'out') AS passages_out,
                   count(*) FILTER (WHERE direction = 'in') AS passages_in
            FROM tag_observations GROUP BY read_point, bucket;
    END IF;
END
$$;

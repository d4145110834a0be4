-- Hypertables when TimescaleDB is installed on the server; plain tables (with BRIN on time)
-- otherwise. Both paths answer the same queries.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        -- One day of observations and positions of a large site fits well inside 25 % of RAM.
        PERFORM create_hypertable('tag_observations', 'ts', chunk_time_interval => interval '1 day',
                                  migrate_data => true);
        PERFORM create_hypertable('positions', 'ts', chunk_time_interval => interval '1 day',
                                  migrate_data => true);
        PERFORM create_hypertable('gateway_states', 'ts', chunk_time_interval => interval '7 days',
                                  migrate_data => true);
    ELSE
        CREATE INDEX IF NOT EXISTS tag_observations_ts_brin ON tag_observations USING brin (ts);
        CREATE INDEX IF NOT EXISTS positions_ts_brin ON positions USING brin (ts);
        CREATE INDEX IF NOT EXISTS gateway_states_ts_brin ON gateway_states USING brin (ts);
    END IF;
END
$$;

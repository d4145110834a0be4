-- Tenant isolation enforced by PostgreSQL, not only by the API's queries.
--
-- The API works as `cargotrace_api`: it owns nothing and has no BYPASSRLS, so row-level security
-- applies to every statement it runs. Each request sets, for its transaction only (set_config(...,
-- true), i.e. SET LOCAL), `cargotrace.role` and `cargotrace.customer_id`; with neither set, the
-- customer-owned tables show no rows at all. Services (ingest, crm_link, the CLI) connect as the
-- owner, which FORCE ROW LEVEL SECURITY would also restrict: the `owner_all` policies let it through.
DO $$
BEGIN
    CREATE ROLE cargotrace_api NOLOGIN NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- roles are cluster-wide: another database of this cluster created it
END $$;

-- The owner may switch to it (SET ROLE) when the API has no login role of its own.
DO $$
BEGIN
    EXECUTE format('GRANT cargotrace_api TO %I', current_user);
END $$;
GRANT USAGE ON SCHEMA public TO cargotrace_api;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO cargotrace_api;
GRANT INSERT, UPDATE ON demands, demand_items, demand_history, exceptions, feedback, customers,
    webhook_subscriptions, webhook_deliveries TO cargotrace_api;
GRANT DELETE ON demand_items, webhook_subscriptions TO cargotrace_api;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO cargotrace_api;
REVOKE ALL ON consumer_cursors FROM cargotrace_api;
-- Tables of later migrations: readable and writable by the API, still subject to their own policies.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE ON TABLES TO cargotrace_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO cargotrace_api;

-- Inlined into the policies (plain SQL, STABLE), so the planner still uses customer_id indexes.
CREATE FUNCTION cargotrace_staff() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('cargotrace.role', true), '') IN ('dispatcher', 'integration', 'admin')
$$;

CREATE FUNCTION cargotrace_visible(owner text) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT cargotrace_staff()
        OR (current_setting('cargotrace.role', true) = 'customer'
            AND owner = nullif(current_setting('cargotrace.customer_id', true), ''))
$$;

-- Owned by customer_id directly.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['demands', 'feedback', 'webhook_subscriptions'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant ON %I USING (cargotrace_visible(customer_id))', t);
        EXECUTE format('CREATE POLICY owner_all ON %I TO %I USING (true) WITH CHECK (true)', t, current_user);
    END LOOP;
    -- Owned through the demand, whose own policy applies inside the subquery. EXISTS, not IN: it is
    -- one primary-key probe per row, where IN built a hash of all the customer's demands per query.
    FOREACH t IN ARRAY ARRAY['demand_items', 'demand_history', 'shipment_events', 'exceptions'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant ON %I USING (cargotrace_staff() '
                       'OR EXISTS (SELECT 1 FROM demands d WHERE d.id = demand_id))', t);
        EXECUTE format('CREATE POLICY owner_all ON %I TO %I USING (true) WITH CHECK (true)', t, current_user);
    END LOOP;
    EXECUTE format('CREATE POLICY owner_all ON customers TO %I USING (true) WITH CHECK (true)', current_user);
    EXECUTE format('CREATE POLICY owner_all ON webhook_deliveries TO %I USING (true) WITH CHECK (true)', current_user);
END $$;

ALTER TABLE customers ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON customers USING (cargotrace_visible(id));
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON webhook_deliveries
    USING (cargotrace_staff() OR EXISTS (SELECT 1 FROM webhook_subscriptions w WHERE w.id = subscription_id));

-- Share links are signed with this secret (HMAC), held in the database so every API process agrees.
-- gen_random_uuid draws on the server's strong random source; two give 244 random bits.
CREATE TABLE signing_keys (
    name       text PRIMARY KEY,
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO signing_keys (name, secret)
VALUES ('share_links', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));
REVOKE INSERT, UPDATE ON signing_keys FROM cargotrace_api;

-- Live updates for every API process (LISTEN): exceptions opened, acknowledged, resolved.
CREATE FUNCTION cargotrace_notify_exception() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cargotrace_exceptions', json_build_object(
        'id', NEW.id, 'demand_id', NEW.demand_id, 'vehicle_id', NEW.vehicle_id, 'type', NEW.type,
        'state', NEW.state)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER exceptions_notify AFTER INSERT OR UPDATE OF state ON exceptions
    FOR EACH ROW EXECUTE FUNCTION cargotrace_notify_exception();

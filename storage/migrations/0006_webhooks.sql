-- Outbound webhooks: deliveries are queued by triggers in the same transaction as the change they
-- report, so a committed change always has its deliveries and a rolled-back one never does.

ALTER TABLE webhook_subscriptions
    ADD COLUMN eta_threshold_s integer NOT NULL DEFAULT 900 CHECK (eta_threshold_s >= 0),
    ADD COLUMN disabled_reason text;
CREATE INDEX webhook_subscriptions_active ON webhook_subscriptions (customer_id) WHERE active;
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, id);

-- One delivery per active subscription of the customer to this event type. SECURITY DEFINER: a change
-- made through the API (under the caller's tenant) still queues for every matching subscription.
CREATE FUNCTION cargotrace_webhook_enqueue(customer text, event text, data jsonb, eta_moved_s double precision)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
    INSERT INTO webhook_deliveries (subscription_id, webhook_id, event_type, payload)
    SELECT s.id, 'msg_' || replace(gen_random_uuid()::text, '-', ''), event,
           jsonb_build_object('type', event, 'timestamp', now(), 'data', data)
    FROM webhook_subscriptions s
    WHERE s.customer_id = customer AND s.active AND event = ANY (s.event_types)
      AND (eta_moved_s IS NULL OR eta_moved_s > s.eta_threshold_s);
$$;

CREATE FUNCTION cargotrace_demand_ref(demand bigint) RETURNS TABLE (customer_id text, external_ref text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT customer_id, external_ref FROM demands WHERE id = demand;
$$;

CREATE FUNCTION cargotrace_webhook_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    SELECT * INTO d FROM cargotrace_demand_ref(NEW.demand_id);
    PERFORM cargotrace_webhook_enqueue(d.customer_id, 'shipment.status_changed', jsonb_build_object(
        'external_ref', d.external_ref, 'status', NEW.status, 'at', NEW.ts, 'biz_step', NEW.biz_step,
        'place', NEW.place), NULL);
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_status AFTER INSERT ON shipment_events
    FOR EACH ROW EXECUTE FUNCTION cargotrace_webhook_status();

-- Vehicle-only exceptions (no demand) belong to no customer and are not sent.
CREATE FUNCTION cargotrace_webhook_exception() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d record;
    event text := CASE WHEN TG_OP = 'INSERT' THEN 'exception.opened' ELSE 'exception.resolved' END;
BEGIN
    IF NEW.demand_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO d FROM cargotrace_demand_ref(NEW.demand_id);
    PERFORM cargotrace_webhook_enqueue(d.customer_id, event, jsonb_build_object(
        'external_ref', d.external_ref, 'exception_id', NEW.id, 'type', NEW.type, 'state', NEW.state,
        'opened_at', NEW.opened_at, 'resolved_at', NEW.resolved_at, 'evidence', NEW.evidence), NULL);
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_exception_opened AFTER INSERT ON exceptions
    FOR EACH ROW EXECUTE FUNCTION cargotrace_webhook_exception();
CREATE TRIGGER webhook_exception_resolved AFTER UPDATE OF state ON exceptions
    FOR EACH ROW WHEN (NEW.state = 'resolved' AND OLD.state <> 'resolved')
    EXECUTE FUNCTION cargotrace_webhook_exception();

-- The first ETA counts as a move of any size; a withdrawn ETA (NULL) is not reported.
CREATE FUNCTION cargotrace_webhook_eta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cargotrace_webhook_enqueue(NEW.customer_id, 'shipment.eta_changed', jsonb_build_object(
        'external_ref', NEW.external_ref, 'eta', NEW.eta, 'previous_eta', OLD.eta),
        coalesce(abs(extract(epoch FROM NEW.eta - OLD.eta)), 'Infinity'::double precision));
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_eta AFTER UPDATE OF eta ON demands
    FOR EACH ROW WHEN (NEW.eta IS NOT NULL AND NEW.eta IS DISTINCT FROM OLD.eta)
    EXECUTE FUNCTION cargotrace_webhook_eta();

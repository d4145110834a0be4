-- What a customer sees of a route exception, written once and used by the API (a shipment's open
-- exceptions, its live stream) and by customers' webhooks alike: the kinds shippers are shown
-- (storage/vocabulary.py CUSTOMER_VISIBLE_EXCEPTIONS, tested against this list), without the
-- dispatcher's evidence, notes and ids. NULL for the kinds only dispatchers see.
CREATE FUNCTION cargotrace_customer_exception(x exceptions) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN x.type IN ('misload', 'missing_cargo', 'late', 'wrong_destination')
                THEN jsonb_build_object('type', x.type, 'state', x.state, 'opened_at', x.opened_at) END
$$;

-- Whom a subscription speaks to: 'customer' (what the API shows the customer) or 'staff' (everything,
-- set only by an integration or admin key). Existing subscriptions become customer-facing.
ALTER TABLE webhook_subscriptions ADD COLUMN audience text NOT NULL DEFAULT 'customer'
    CHECK (audience IN ('customer', 'staff'));

-- Each change is queued with both views; a customer-facing subscription gets the customer's, and
-- nothing when the customer is not to see the change.
DROP FUNCTION cargotrace_webhook_enqueue(text, text, jsonb, double precision);
CREATE FUNCTION cargotrace_webhook_enqueue(customer text, event text, data jsonb, customer_data jsonb,
                                           eta_moved_s double precision)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
    INSERT INTO webhook_deliveries (subscription_id, webhook_id, event_type, payload)
    SELECT s.id, 'msg_' || replace(gen_random_uuid()::text, '-', ''), event,
           jsonb_build_object('type', event, 'timestamp', now(),
                              'data', CASE s.audience WHEN 'staff' THEN data ELSE customer_data END)
    FROM webhook_subscriptions s
    WHERE s.customer_id = customer AND s.active AND event = ANY (s.event_types)
      AND (eta_moved_s IS NULL OR eta_moved_s > s.eta_threshold_s)
      AND (s.audience = 'staff' OR customer_data IS NOT NULL);
$$;

CREATE OR REPLACE FUNCTION cargotrace_webhook_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d record;
    data jsonb;
BEGIN
    SELECT * INTO d FROM cargotrace_demand_ref(NEW.demand_id);
    data := jsonb_build_object('external_ref', d.external_ref, 'status', NEW.status, 'at', NEW.ts,
                               'biz_step', NEW.biz_step, 'place', NEW.place);
    PERFORM cargotrace_webhook_enqueue(d.customer_id, 'shipment.status_changed', data, data, NULL);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION cargotrace_webhook_exception() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d record;
    event text := CASE WHEN TG_OP = 'INSERT' THEN 'exception.opened' ELSE 'exception.resolved' END;
    seen jsonb := cargotrace_customer_exception(NEW);
BEGIN
    IF NEW.demand_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO d FROM cargotrace_demand_ref(NEW.demand_id);
    PERFORM cargotrace_webhook_enqueue(d.customer_id, event, jsonb_build_object(
        'external_ref', d.external_ref, 'exception_id', NEW.id, 'type', NEW.type, 'state', NEW.state,
        'opened_at', NEW.opened_at, 'resolved_at', NEW.resolved_at, 'evidence', NEW.evidence),
        jsonb_build_object('external_ref', d.external_ref) || seen, NULL);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION cargotrace_webhook_eta() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    data jsonb := jsonb_build_object('external_ref', NEW.external_ref, 'eta', NEW.eta, 'previous_eta', OLD.eta);
BEGIN
    PERFORM cargotrace_webhook_enqueue(NEW.customer_id, 'shipment.eta_changed', data, data,
        coalesce(abs(extract(epoch FROM NEW.eta - OLD.eta)), 'Infinity'::double precision));
    RETURN NULL;
END $$;

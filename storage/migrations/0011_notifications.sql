-- Notifications for people on the webhook outbox (0006): besides the Standard Webhooks JSON a subscription
-- may be a WeCom, DingTalk or Feishu/Lark group robot (its URL) or an email address, and is written in a
-- language (NULL: the customer's, customers.language). Existing subscriptions stay webhooks. Robots that
-- sign (DingTalk, Feishu) keep their signing secret in `secret`; WeCom's key is in its URL; email has none.
ALTER TABLE webhook_subscriptions
    ADD COLUMN channel text NOT NULL DEFAULT 'webhook'
        CHECK (channel IN ('webhook', 'wecom', 'dingtalk', 'feishu', 'email')),
    ADD COLUMN language text CHECK (language IN ('zh-CN', 'en')),
    ADD COLUMN email text,
    ALTER COLUMN url DROP NOT NULL,
    ALTER COLUMN secret DROP NOT NULL,
    ADD CONSTRAINT webhook_subscriptions_address CHECK ((channel = 'email') = (email IS NOT NULL)
                                                        AND (channel = 'email') = (url IS NULL)),
    ADD CONSTRAINT webhook_subscriptions_signed CHECK (channel IN ('wecom', 'email') OR secret IS NOT NULL);

-- The language a customer is written to, by id: the API reads it with a key or a share link, before it
-- knows the tenant whose customer row row-level security would show it.
CREATE FUNCTION cargotrace_customer_language(customer text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT language FROM customers WHERE id = customer;
$$;

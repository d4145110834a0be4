-- A retained message (a gateway's state) comes again with every new subscription: when it is bad, its
-- dead letter is written once, keyed by topic and content, not once per ingest restart.
ALTER TABLE dead_letters ADD COLUMN retained_digest bytea;
CREATE UNIQUE INDEX dead_letters_retained ON dead_letters (topic, retained_digest) WHERE retained_digest IS NOT NULL;

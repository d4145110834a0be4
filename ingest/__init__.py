"""MQTT → database: validate contract messages, write them in idempotent batches."""

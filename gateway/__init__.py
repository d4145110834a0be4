"""The edge process: run device drivers, filter and smooth, keep a durable outbox, publish over MQTT."""

"""Database schema and migrations, MQTT ingest, the HTTP API and the command line."""

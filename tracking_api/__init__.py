"""The HTTP API and its web pages."""

"""What every process shares: the MQTT contract, EPC identifiers, the metrics server, logging and the
central services' settings. It imports no other package of the project."""

-- What a telematics terminal raised with a fix (JT/T 808 alarm bits by name): evidence for dispatchers.
ALTER TABLE positions ADD COLUMN alarms text[];

-- A terminal's emergency (SOS) alarm during a shipment opens an exception of its own.
ALTER TABLE exceptions DROP CONSTRAINT exceptions_type_check;
ALTER TABLE exceptions ADD CONSTRAINT exceptions_type_check CHECK (type IN ('misload', 'missing_cargo', 'off_route',
    'unplanned_stop', 'late', 'gps_silence', 'wrong_destination', 'emergency'));

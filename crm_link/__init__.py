"""The customer side: demand records, shipment status, exceptions, KPIs and sync with the CRM."""

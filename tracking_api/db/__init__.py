"""Schema, migrations and connections of the central database."""

"""The database: versioned schema migrations and the vocabulary its tables and channels speak."""

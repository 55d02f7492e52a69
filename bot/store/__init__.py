"""The bot's persistent state: one SQLite file (db), its run records (runs) and job tables (jobs)."""

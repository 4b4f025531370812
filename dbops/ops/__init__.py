"""Actions that change the cluster: migrations, seed data (and later backups, maintenance)."""

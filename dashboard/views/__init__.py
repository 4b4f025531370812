"""Dashboard pages: each renders one topic from dashboard.data, none holds SQL."""

"""The Streamlit dashboard: `streamlit run dashboard/app.py` (pages read through dashboard.data)."""

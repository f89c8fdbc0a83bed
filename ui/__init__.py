"""Reusable Streamlit widgets shared by the dashboard pages (the analysis lives in ``maskdet``)."""

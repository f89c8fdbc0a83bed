"""maskdet dashboard entry point: `streamlit run streamlit_app.py`."""

import logging

import streamlit as st

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="maskdet", page_icon="😷", layout="wide")

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("app_pages/dataset.py", title="Dataset", icon="🗂️", url_path="dataset"),
    st.Page("app_pages/train.py", title="Train", icon="🏋️", url_path="train"),
    st.Page("app_pages/compare.py", title="Compare", icon="📊", url_path="compare"),
    st.Page("app_pages/photo.py", title="Photo", icon="🖼️", url_path="photo"),
    st.Page("app_pages/webcam.py", title="Webcam", icon="🎥", url_path="webcam"),
]

st.navigation(PAGES).run()

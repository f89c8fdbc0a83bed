"""maskdet dashboard entry point: `streamlit run streamlit_app.py`.

Every page but Train shows the server's training job in the sidebar (``ui.training``): one
job trains for all sessions, and it slows everyone's analyses while it runs. The sidebar also says
whether the dashboard is private to this machine or reachable from the network (``ui.exposure``).
"""

import logging

import streamlit as st

from ui.exposure import exposure_notice
from ui.training import TRAIN_PAGE, sidebar_status

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="maskdet", page_icon="😷", layout="wide")

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("app_pages/dataset.py", title="Dataset", icon="🗂️", url_path="dataset"),
    st.Page(TRAIN_PAGE, title="Train", icon="🏋️", url_path="train"),
    st.Page("app_pages/compare.py", title="Compare", icon="📊", url_path="compare"),
    st.Page("app_pages/photo.py", title="Photo", icon="🖼️", url_path="photo"),
    st.Page("app_pages/webcam.py", title="Webcam", icon="🎥", url_path="webcam"),
]

page = st.navigation(PAGES)
exposure_notice()  # NOTE: belongs in the shared page setup once pages move to pages/
if page.url_path != "train":  # the Train page draws the job in full
    sidebar_status()
page.run()

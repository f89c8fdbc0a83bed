"""Video page: upload a clip, watch the analysis progress, then see faces per class over time, the
annotated clip (play or download) and the moments with unmasked faces.

The analysis is a :class:`maskdet.video.job.VideoJob` (a worker thread, one per session, kept in
``st.session_state``): the page only starts it and reads its snapshots, in a fragment redrawn every
:data:`REFRESH_S` seconds while it runs; the worker never calls Streamlit. A clip that cannot be decoded
gets one error message; a truncated one shows what could be read, with the reason.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePath

import pandas as pd
import plotly.express as px
import streamlit as st

from maskdet.assets import AssetUnavailableError
from maskdet.checkpoint import CheckpointError
from maskdet.pipeline import FacePipeline
from maskdet.video import VIDEO_SUFFIXES
from maskdet.video.job import VideoJob, VideoJobState, VideoJobStatus, job_folder
from ui.markup import code, plain
from ui.models import choose_model
from ui.resources import get_classifier, get_detector
from ui.shell import setup_page

setup_page("Video")

UPLOAD_LIMIT_MB = 200  # server.maxUploadSize in .streamlit/config.toml
REFRESH_S = 0.5
LABEL_TEXT = {"with_mask": "😷 with mask", "without_mask": "🙂 without mask"}
COLOURS = {LABEL_TEXT["with_mask"]: "#28a745", LABEL_TEXT["without_mask"]: "#dc3545"}


def start_job(data: bytes, name: str, pipeline: FacePipeline, every: int, key: str) -> VideoJob:
    """Save the upload in a job folder and start analysing it."""
    folder = job_folder(key)
    source = folder / f"clip{PurePath(name).suffix.lower()}"
    source.write_bytes(data)
    return VideoJob(source, pipeline, folder / "annotated.mp4", every=every).start()


@st.fragment(run_every=REFRESH_S)
def show_progress(job: VideoJob) -> None:
    """The progress bar; a full rerun (which draws the results) once the job has ended."""
    status = job.snapshot()
    if not status.active:
        st.rerun()
    expected = status.info.expected_frames if status.info else 0
    st.progress(status.fraction, text=f"Analysing: frame {status.frames_read} of {expected or '?'}"
                                      f" · {status.seconds:.0f} s")
    if st.button("Stop", key="video_stop"):
        job.cancel()


def frame_table(status: VideoJobStatus) -> pd.DataFrame:
    """One row per processed frame: frame, time and faces per class."""
    return pd.DataFrame([{"frame": row.frame, "time (s)": round(row.time, 3), **row.counts}
                         for row in status.timeline], columns=["frame", "time (s)", *LABEL_TEXT])


def show_results(status: VideoJobStatus, name: str) -> None:
    table = frame_table(status)
    totals = ", ".join(f"{int(table[label].sum())} {text}" for label, text in LABEL_TEXT.items())
    speed = len(table) / status.seconds if status.seconds else 0.0
    st.success(f"{len(table)} frames analysed in {status.seconds:.1f} s ({speed:.1f} frames/s): {totals} "
               "(faces summed over frames)")
    long = table.melt(id_vars=["frame", "time (s)"], value_vars=list(LABEL_TEXT), var_name="class", value_name="faces")
    long["class"] = long["class"].map(LABEL_TEXT)
    figure = px.line(long, x="time (s)", y="faces", color="class", color_discrete_map=COLOURS, line_shape="hv",
                     title="Faces per class over time")
    figure.update_yaxes(rangemode="tozero", dtick=1)
    st.plotly_chart(figure, key="video_counts")
    if status.annotated is not None:
        clip = status.annotated.read_bytes()
        st.video(clip, format="video/mp4")
        st.download_button("Download the annotated clip", clip, file_name=f"{PurePath(name).stem}-annotated.mp4",
                           mime="video/mp4", key="video_download")
    if status.thumbnails:
        st.subheader("Frames with unmasked faces")
        st.image([t.image for t in status.thumbnails], caption=[f"{t.time:.1f} s (frame {t.frame})"
                                                                 for t in status.thumbnails], width=192)
    else:
        st.info("No unmasked face in the analysed frames.")
    with st.expander("Faces per frame"):
        st.dataframe(table, hide_index=True, key="video_frames")


st.title("🎞️ Video")
st.caption("Upload a clip: every face in every frame is found and labelled; see when people were unmasked.")

controls = st.columns(2)
model_name = choose_model(controls[0], key="video_model")
every = controls[1].number_input("Analyse every N-th frame", min_value=1, max_value=100, value=1, step=1,
                                 key="video_every", help="2 halves the work; the annotated clip keeps every frame.")
try:
    classifier = get_classifier(model_name)
    pipeline = FacePipeline(classifier, get_detector("centerface"))
except (CheckpointError, AssetUnavailableError) as exc:
    st.error(f"Cannot load the models: {exc}")
    st.stop()

upload = st.file_uploader("Clip", type=sorted(s.lstrip(".") for s in VIDEO_SUFFIXES), key="video_upload",
                          max_upload_size=UPLOAD_LIMIT_MB, help="MP4, WebM, MOV, AVI or MKV.")
if upload is None:
    st.info("Upload a video clip to find the faces in it.")
    st.stop()

data = upload.getvalue()
key = hashlib.sha256(data + f"|{classifier.loaded.metadata['weights']['sha256']}|{every}".encode()).hexdigest()[:16]
job: VideoJob | None = st.session_state.get("video_job")
if job is None or st.session_state.get("video_job_key") != key:
    if job is not None:
        job.cancel()
    job = start_job(data, upload.name, pipeline, int(every), key)
    st.session_state["video_job"], st.session_state["video_job_key"] = job, key

st.subheader(plain(upload.name))
status = job.snapshot()
if status.active:
    show_progress(job)
    st.stop()
if status.state == VideoJobState.FAILED:
    st.error(f"Cannot read {code(upload.name)}: {plain(status.error)}")
    st.stop()
if status.state == VideoJobState.CANCELLED:
    st.warning("Stopped: nothing was kept.")
    if st.button("Analyse it again", key="video_restart"):
        del st.session_state["video_job_key"]
        st.rerun()
    st.stop()
if status.error:
    st.warning(f"Only part of {code(upload.name)} could be read: {plain(status.error)}. Showing what was read.")
show_results(status, upload.name)

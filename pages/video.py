"""Video page: upload a clip, watch the analysis progress, then see faces per class over time, the
annotated clip (play or download) and the moments with unmasked faces.

The analysis is an ``analyse-video`` job (:mod:`maskdet.jobs`) in a process of its own, which loads the
models and writes the annotated clip, the thumbnails and the faces per frame into the clip's folder
(:mod:`maskdet.video.results`). The server only saves the upload, shows the job's progress in a
fragment redrawn every :data:`REFRESH_S` seconds (a Stop button cancels it) and, once it has finished,
reads the folder. The runner belongs to the session (``st.session_state``): uploads are per session, and
one visitor's long clip must not hold up another's, as a server-wide one-job runner would. The folder is
keyed by the clip's bytes, the model's weights and the settings, so the same clip analysed again, in any
session, is shown at once. A clip that cannot be decoded gets one error message; a truncated one shows
what could be read, with the reason.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePath

import pandas as pd
import plotly.express as px
import streamlit as st

from maskdet.zoo.folders import CheckpointError, operating_threshold, read_metadata, resolve_model
from maskdet.inference.drawing import LABEL_TEXT, hex_colour
from maskdet.jobs import JobRunner, JobState
from maskdet.video import VIDEO_SUFFIXES
from maskdet.video.results import VideoResults, analysis_folder, analysis_key, read_results, stage_clip
from ui.markup import code, plain
from ui.models import choose_model
from ui.shell import setup_page

setup_page("Video")

UPLOAD_LIMIT_MB = 200  # server.maxUploadSize in .streamlit/config.toml
REFRESH_S = 0.5
DETECTOR = "centerface"  # the product's face detector setting, as on the Photo page
RUNNER_KEY = "video_runner"
ENDED_NOTES = {
    JobState.CANCELLED: "Stopped: nothing was kept.",
    JobState.FINISHED: "The results of this analysis were deleted to make room for newer clips.",
}


def start_job(data: bytes, name: str, folder: Path, model: str, threshold: float, every: int) -> JobRunner:
    """Save the upload in its folder and start analysing it on a new runner (the session's previous job is
    cancelled: its clip is no longer on the page)."""
    clip = stage_clip(data, PurePath(name).suffix, folder)
    previous: JobRunner | None = st.session_state.get(RUNNER_KEY)
    if previous is not None:
        previous.cancel()
    runner = JobRunner()
    runner.submit("analyse-video", {"clip": str(clip), "model": model, "detector": DETECTOR, "every": every,
                                    "threshold": threshold, "output": str(folder)})
    st.session_state[RUNNER_KEY] = runner
    return runner


@st.fragment(run_every=REFRESH_S)
def show_progress(runner: JobRunner) -> None:
    """The progress bar and Stop; a full rerun (which draws the results) once the job has ended."""
    status = runner.snapshot()
    if not status.active:
        st.rerun()
    message = status.progress.message if status.progress else "Starting"
    st.progress(status.fraction, text=f"Analysing: {message} · {status.elapsed():.0f} s")
    st.button("Stop", key="video_stop", on_click=runner.cancel, disabled=status.state == JobState.CANCELLING)


def show_job(data: bytes, name: str, folder: Path, model: str, threshold: float, every: int) -> None:
    """The session's job on this clip (started here when there is none): its progress while it runs, else
    why it left no result, with a button to run it again."""
    runner: JobRunner | None = st.session_state.get(RUNNER_KEY)
    status = runner.snapshot() if runner is not None else None
    if status is None or status.config.get("output") != str(folder):  # no job of this session on this clip yet
        try:
            runner = start_job(data, name, folder, model, threshold, every)
        except ValueError as exc:
            st.error(f"Cannot analyse {code(name)}: {plain(str(exc))}")
            return
        status = runner.snapshot()
    if status.active:
        show_progress(runner)
        return
    if status.state == JobState.FAILED:
        st.error(f"Cannot analyse {code(name)}: {plain(status.error)}")
    else:
        st.warning(ENDED_NOTES[status.state])  # cancelled, or finished but its folder is gone
    if st.button("Analyse it again", key="video_restart"):
        del st.session_state[RUNNER_KEY]
        st.rerun()


@st.cache_data(show_spinner=False, max_entries=16)
def clip_digest(file_id: str, _data: bytes) -> str:
    """The upload's SHA-256, once per uploaded file (a clip of up to 200 MB is not hashed on every rerun)."""
    return hashlib.sha256(_data).hexdigest()


def frame_table(results: VideoResults) -> pd.DataFrame:
    """One row per processed frame: frame, time and faces per class (the model's classes)."""
    classes = [label for label in LABEL_TEXT if any(label in row.counts for row in results.frames)]
    return pd.DataFrame([{"frame": row.frame, "time (s)": round(row.time, 3), **row.counts}
                         for row in results.frames], columns=["frame", "time (s)", *classes])


def show_results(results: VideoResults, name: str) -> None:
    table = frame_table(results)
    classes = [label for label in LABEL_TEXT if label in table.columns]
    totals = ", ".join(f"{int(table[label].sum())} {LABEL_TEXT[label]}" for label in classes)
    speed = len(table) / results.seconds if results.seconds else 0.0
    st.success(f"{len(table)} frames analysed in {results.seconds:.1f} s ({speed:.1f} frames/s): {totals} "
               "(faces summed over frames)")
    long = table.melt(id_vars=["frame", "time (s)"], value_vars=classes, var_name="class", value_name="faces")
    long["class"] = long["class"].map(LABEL_TEXT)
    colours = {LABEL_TEXT[label]: hex_colour(label) for label in classes}
    figure = px.line(long, x="time (s)", y="faces", color="class", color_discrete_map=colours, line_shape="hv",
                     title="Faces per class over time")
    figure.update_yaxes(rangemode="tozero", dtick=1)
    st.plotly_chart(figure, key="video_counts")
    clip = results.annotated.read_bytes()
    st.video(clip, format="video/mp4")
    st.download_button("Download the annotated clip", clip, file_name=f"{PurePath(name).stem}-annotated.mp4",
                       mime="video/mp4", key="video_download")
    if results.thumbnails:
        st.subheader("Frames with unmasked or incorrectly masked faces")
        st.image([str(t.path) for t in results.thumbnails],
                 caption=[f"{t.time:.1f} s (frame {t.frame})" for t in results.thumbnails], width=192)
    else:
        st.info("No unmasked face in the analysed frames.")
    with st.expander("Faces per frame"):
        st.dataframe(table, hide_index=True, key="video_frames")


st.title("🎞️ Video")
st.caption("Upload a clip: every face in every frame is found and labelled; see when people were unmasked.")

controls = st.columns(2)
model_name = choose_model(controls[0], key="video_model")
every = int(controls[1].number_input("Analyse every N-th frame", min_value=1, max_value=100, value=1, step=1,
                                     key="video_every", help="2 halves the work; the annotated clip keeps every frame."))
try:
    card = read_metadata(resolve_model(model_name))  # the model itself is loaded by the job, not by the server
except CheckpointError as exc:
    st.error(f"Cannot use the model: {exc}")
    st.stop()
threshold = operating_threshold(card)

upload = st.file_uploader("Clip", type=sorted(s.lstrip(".") for s in VIDEO_SUFFIXES), key="video_upload",
                          max_upload_size=UPLOAD_LIMIT_MB, help="MP4, WebM, MOV, AVI or MKV.")
if upload is None:
    if RUNNER_KEY in st.session_state:
        st.session_state[RUNNER_KEY].cancel()  # its clip was removed from the page: stop spending the CPU on it
    st.info("Upload a video clip to find the faces in it.")
    st.stop()

data = upload.getvalue()
folder = analysis_folder(analysis_key(clip_digest(upload.file_id, data), card["weights"]["sha256"], threshold,
                                      every, DETECTOR))
st.subheader(plain(upload.name))
results = read_results(folder)
if results is None:
    show_job(data, upload.name, folder, model_name, threshold, every)
    st.stop()
if results.error:
    st.warning(f"Only part of {code(upload.name)} could be read: {plain(results.error)}. Showing what was read.")
show_results(results, upload.name)

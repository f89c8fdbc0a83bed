"""Video page: upload a clip, watch the analysis progress, then see faces per class over time, the
annotated clip (play or download) and the moments with unmasked faces.

The analysis is an ``analyse-video`` job (:mod:`maskdet.jobs`) in a process of its own, which loads the
models and writes the annotated clip, the thumbnails and the faces per frame into the clip's folder
(:mod:`maskdet.video.results`). The job goes to the server's job service (``ui.jobs``): a few analyses
run at once, the others wait with their place in the queue shown, a visitor has a quota, and the job is
cancelled when the session ends. The server only saves the upload (within the session's disk budget), shows
the job's progress (``ui.jobs.show_job_progress``) and, once it has finished, reads the folder. The folder
is the session's own (``ui.storage``), keyed by the clip's bytes, the model's weights and the settings, so
the same clip analysed again is shown at once; the job holds a lease on it, so no newer upload deletes it
while it runs. A clip that cannot be decoded gets one error message; a truncated one shows what could be
read, with the reason.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePath

import pandas as pd
import plotly.express as px
import streamlit as st

from maskdet.zoo.folders import CheckpointError, operating_threshold, read_metadata, resolve_model
from maskdet.inference.detector import DEFAULT_ZOOM_BELOW, PHOTO_EXTRA_LONG_SIDES, ZOOM_FACTOR
from maskdet.inference.drawing import LABEL_TEXT, hex_colour
from maskdet.jobs import JobRefused, JobState, SessionRunner
from maskdet.video import VIDEO_SUFFIXES
from maskdet.video.results import VideoResults, analysis_folder, analysis_key, read_results, stage_clip
from ui.jobs import session_runner, show_job_progress
from ui.markup import code, plain
from ui.figures import with_room_for_the_toolbar
from ui.models import choose_model, threshold_caption
from ui.shell import setup_page
from ui.storage import ensure_storage, session_files

setup_page("Video")

THUMBNAIL_COLUMNS = 3
UPLOAD_LIMIT_MB = 200  # server.maxUploadSize in .streamlit/config.toml
DETECTOR = "centerface"  # the product's setting; its frames get the frame setting (maskdet.video.analyse_video)
RUNNER_KEY = "video_runner"  # this session's runner on the job service (ui.jobs.session_runner)
ENDED_NOTES = {
    JobState.CANCELLED: "Stopped: nothing was kept.",
    JobState.FINISHED: "The results of this analysis were deleted to make room for newer clips.",
}


def start_job(data: bytes, name: str, folder: Path, model: str, threshold: float, every: int) -> SessionRunner:
    """Save the upload in its folder (within the session's disk budget: the clip and about as much again for the
    annotated one) and queue its analysis (the session's previous job is cancelled: its clip is no longer on
    the page)."""
    runner = session_runner(RUNNER_KEY)
    runner.cancel()
    ensure_storage(2 * len(data))
    clip = stage_clip(data, PurePath(name).suffix, folder)
    runner.submit("analyse-video", {"clip": str(clip), "model": model, "detector": DETECTOR, "every": every,
                                    "threshold": threshold, "output": str(folder)}, label="Analysing", holds=[folder])
    return runner


def show_job(data: bytes, name: str, folder: Path, model: str, threshold: float, every: int) -> None:
    """The session's job on this clip (started here when there is none): its progress while it waits or runs,
    else why it left no result, with a button to run it again."""
    runner = session_runner(RUNNER_KEY)
    status = runner.snapshot()
    if status.config.get("output") != str(folder):  # no job of this session on this clip yet
        try:
            runner = start_job(data, name, folder, model, threshold, every)
        except (ValueError, JobRefused) as exc:  # StorageFull is a ValueError
            st.error(f"Cannot analyse {code(name)}: {plain(str(exc))}")
            return
        status = runner.snapshot()
    if status.active:
        show_job_progress(runner.snapshot, runner.cancel, "video", label="Analysing")
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
    """One row per processed frame: frame, time and faces per class."""
    return pd.DataFrame([{"frame": row.frame, "time (s)": round(row.time, 3), **row.counts}
                         for row in results.frames],
                        columns=["frame", "time (s)", *(label for label in LABEL_TEXT
                                                        if any(label in row.counts for row in results.frames))])


def show_results(results: VideoResults, name: str) -> None:
    table = frame_table(results)
    classes = [label for label in LABEL_TEXT if label in table.columns]
    totals = ", ".join(f"{int(table[label].sum())} {LABEL_TEXT[label]}" for label in classes)
    speed = len(table) / results.seconds if results.seconds else 0.0
    st.success(f"{len(table)} frames analysed in {results.seconds:.1f} s ({speed:.1f} frames/s)")
    if results.people is not None:
        people = ", ".join(f"{results.people['people'].get(label, 0)} {text}" for label, text in LABEL_TEXT.items())
        ratio = results.people["compliance"]
        st.markdown(f"**People**: {people}" + (f" ({results.people['undecided']} undecided)"
                                                if results.people["undecided"] else "")
                    + ("" if ratio is None else f"; compliance {ratio:.0%}")
                    + " — faces tracked across frames, one verdict per person from a vote over their frames.")
    st.caption(f"Faces summed over frames: {totals}")
    long = table.melt(id_vars=["frame", "time (s)"], value_vars=classes, var_name="class", value_name="faces")
    long["class"] = long["class"].map(LABEL_TEXT)
    figure = px.line(long, x="time (s)", y="faces", color="class", color_discrete_map={text: hex_colour(label) for label, text in LABEL_TEXT.items()}, line_shape="hv",
                     title="Faces per class over time")
    figure.update_yaxes(rangemode="tozero", dtick=1)
    st.plotly_chart(with_room_for_the_toolbar(figure), key="video_counts")
    st.caption(f"Why a crowd finds fewer faces here than in a photo: photos are also searched at a "
               f"{max(PHOTO_EXTRA_LONG_SIDES)} px long side and, up to {DEFAULT_ZOOM_BELOW} px, at {ZOOM_FACTOR}x "
               "their size, so faces of a few pixels are found; video frames are not, which would cost the frame "
               "rate, so faces smaller than about 10-20 px in a frame are often missed. Film closer, or analyse a "
               "still of the crowd on the Photo page.")
    clip = results.annotated.read_bytes()
    st.video(clip, format="video/mp4")
    st.download_button("Download the annotated clip", clip, file_name=f"{PurePath(name).stem}-annotated.mp4",
                       mime="video/mp4", key="video_download")
    if results.thumbnails:
        st.subheader("Frames with unmasked faces")
        thumbnails = list(results.thumbnails)
        for start in range(0, len(thumbnails), THUMBNAIL_COLUMNS):
            row = thumbnails[start : start + THUMBNAIL_COLUMNS]
            for column, thumb in zip(st.columns(THUMBNAIL_COLUMNS), row, strict=False):
                column.image(str(thumb.path), caption=f"{thumb.time:.1f} s (frame {thumb.frame})", width="stretch")
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
st.caption(threshold_caption(threshold))

upload = st.file_uploader("Clip", type=sorted(s.lstrip(".") for s in VIDEO_SUFFIXES), key="video_upload",
                          max_upload_size=UPLOAD_LIMIT_MB, help="MP4, WebM, MOV, AVI or MKV.")
if upload is None:
    if RUNNER_KEY in st.session_state:
        session_runner(RUNNER_KEY).cancel()  # its clip was removed from the page: stop spending the CPU on it
    st.info("Upload a video clip to find the faces in it.")
    st.stop()

data = upload.getvalue()
folder = analysis_folder(analysis_key(clip_digest(upload.file_id, data), card["weights"]["sha256"], threshold,
                                      every, DETECTOR), session_files("videos"))
st.subheader(plain(upload.name))
results = read_results(folder)
if results is None:
    show_job(data, upload.name, folder, model_name, threshold, every)
    st.stop()
if results.error:
    st.warning(f"Only part of {code(upload.name)} could be read: {plain(results.error)}. Showing what was read.")
show_results(results, upload.name)

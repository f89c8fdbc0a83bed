"""Webcam page: watch a place. People are tracked across frames, each gets one verdict, and the page counts
them, shows the compliance ratio over time, raises an alert (banner, optional sound) when someone without a
mask stays in view, logs events, records and snapshots the annotated stream.

Sources: the browser's camera over WebRTC (streamlit-webrtc), plus any number of others each with its own
counts and alerts: an uploaded clip played as a live stream, an RTSP / HTTP camera URL or a camera device of
the server (URLs and devices make the server connect somewhere: the owner's, on a shared dashboard).
Models are loaded once per server (``ui.resources``), never per frame; frames that arrive while one is being
processed are dropped, not queued (``async_processing``).

ICE servers: none by default (browser and server on one machine or LAN; works offline). A remote deployment
sets STUN / TURN servers in ``MASKDET_ICE_SERVERS`` (JSON list) or in ``.streamlit/secrets.toml``
(``[[ice_servers]]`` tables); the environment variable wins.

NOTE (threading): the camera's frame callback and each other source's reader thread only call
``WatchSession.process``; the readouts are fragments that read ``session.snapshot()`` (lock-guarded) twice a
second. A stream begins and ends in one place: :class:`maskdet.video.stream.StreamRunner` for sources, and the
camera's ``on_change`` for the browser's camera.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import av
import numpy as np
import streamlit as st
from streamlit_webrtc import WebRtcMode, WebRtcStreamerContext, webrtc_streamer

from maskdet.inference.live import LIVE_DETECTOR_OPTIONS, rtc_configuration
from maskdet.inference.pipeline import FacePipeline
from maskdet.runtime import inference_worker
from maskdet.sharing import Action
from maskdet.store import atomic_write
from maskdet.video.stream import Recorder, StreamRunner, is_url, prune_watch_folder, watch_folder
from maskdet.watch import WATCH_DETECTOR, Privacy, WatchConfig, WatchSession
from maskdet.zoo.assets import AssetUnavailableError
from maskdet.zoo.folders import CheckpointError
from ui.access import explain_refusal, may, session_id
from ui.jobs import job_service
from ui.models import choose_model, threshold_caption
from ui.resources import get_classifier, get_detector
from ui.shell import setup_page
from ui.watch_panel import receiving, show_banner, show_figures, show_history

setup_page("Webcam")

logger = logging.getLogger(__name__)

STREAM_KEY = "webcam_stream"
CAMERA_KEY = "webcam_camera"
SOURCES_KEY = "webcam_sources"
RECORDER_KEY = "webcam_recorder"
SLOT_KEY = "webcam_stream_slot"  # this session's camera holds one of the server's live-stream slots
REFUSED_KEY = "webcam_stream_refused"  # its last start found every slot taken: the stream is stopped
READOUT_REFRESH_S = 0.5
MEDIA_CONSTRAINTS = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False}
PRIVACY_LABELS = {Privacy.OFF: "Keep pictures", Privacy.BLUR: "Blur faces in every picture",
                  Privacy.NO_PICTURES: "Keep no pictures"}


class CameraFeed:
    """The browser camera's frame callback (runs on streamlit-webrtc's worker thread): mirror, then watch."""

    def __init__(self, session: WatchSession) -> None:
        self.session = session
        self.mirror = True

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        rgb = frame.to_ndarray(format="rgb24")
        if self.mirror:
            rgb = np.ascontiguousarray(rgb[:, ::-1])
        annotated, _events = self.session.process(rgb)
        return av.VideoFrame.from_ndarray(annotated, format="rgb24")


def _ice_configuration() -> dict:
    """ICE servers from ``MASKDET_ICE_SERVERS`` or ``st.secrets["ice_servers"]``; none by default."""
    try:
        secret = st.secrets.get("ice_servers")
    except FileNotFoundError:  # no secrets.toml at all
        secret = None
    return rtc_configuration(fallback=secret)


def _new_session(pipeline: FacePipeline, config: WatchConfig) -> WatchSession:
    return WatchSession(pipeline, config, run=inference_worker().submit)


def _camera(pipeline: FacePipeline, config: WatchConfig) -> CameraFeed:
    """This browser session's camera feed (its figures are this viewer's), created on first use."""
    if CAMERA_KEY not in st.session_state:
        st.session_state[CAMERA_KEY] = CameraFeed(_new_session(pipeline, config))
    return st.session_state[CAMERA_KEY]


def _on_stream_change() -> None:
    """A camera stream that starts takes one of the server's live-stream slots (``ui.jobs.job_service``), or is
    stopped when all are taken; one that stops gives its slot back. Figures count "since START": reset on start."""
    context = st.session_state.get(STREAM_KEY)
    if context is None:
        return
    service, me = job_service(), session_id()
    if context.state.playing and not st.session_state.get(SLOT_KEY):
        st.session_state[SLOT_KEY] = service.try_acquire_stream(me)
        st.session_state[REFUSED_KEY] = not st.session_state[SLOT_KEY]
    elif not context.state.playing:
        if st.session_state.get(SLOT_KEY):
            service.release_stream(me)
        st.session_state[SLOT_KEY] = st.session_state[REFUSED_KEY] = False
    feed = st.session_state.get(CAMERA_KEY)
    if feed is not None and context.state.playing:
        feed.session.reset()


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


@st.fragment(run_every=READOUT_REFRESH_S)
def _camera_readout(session: WatchSession, context: WebRtcStreamerContext, sound: bool) -> None:
    snapshot = session.snapshot()
    playing = context.state.playing
    if not playing:
        st.info("Press **START** to stream your camera." if snapshot.frames == 0
                else "Stopped: the figures below are from the last stream. Press **START** to go again.")
    elif snapshot.frames == 0:
        st.info("Connecting… the first frame usually arrives within a few seconds.")
    elif not receiving(snapshot):
        st.info(f"No frame for {snapshot.seconds_since_frame:.0f} s: the connection stalled or was closed. "
                "Press **STOP**, then **START**, if it does not resume.")
    live = playing and receiving(snapshot)
    if live:
        show_banner(snapshot, "camera", sound)
    show_figures(snapshot, session.classes, live)
    show_history(snapshot, "camera", session)


def _recording_controls(session: WatchSession, privacy: Privacy) -> None:
    """Record the annotated camera stream and take snapshots; both follow the privacy mode."""
    if not privacy.keeps_pictures:
        st.caption("Privacy: no pictures are kept, so nothing can be recorded or snapshotted.")
        return
    left, right = st.columns(2)
    recording = left.toggle("Record", key="webcam_record", help="Write the annotated stream to an H.264 clip.")
    recorder: Recorder | None = st.session_state.get(RECORDER_KEY)
    if recording and recorder is None:
        recorder = st.session_state[RECORDER_KEY] = Recorder(watch_folder() / f"camera-{_stamp()}.mp4")
        session.record_to(recorder)
    elif not recording and recorder is not None:
        session.record_to(None)
        st.session_state.pop(RECORDER_KEY)
        st.session_state["webcam_last_recording"] = recorder.close()
    if right.button("Snapshot", key="webcam_snapshot"):
        picture = session.snapshot().last_frame_jpeg
        if picture is None:
            right.caption("No frame yet.")
        else:
            st.session_state["webcam_last_snapshot"] = atomic_write(watch_folder() / f"snapshot-{_stamp()}.jpg",
                                                                    picture)
    last: Path | None = st.session_state.get("webcam_last_recording")
    if last is not None and last.is_file():
        st.video(str(last))
        st.download_button("Download the recording", last.read_bytes(), last.name, "video/mp4", key="rec_dl")
    shot: Path | None = st.session_state.get("webcam_last_snapshot")
    if shot is not None and shot.is_file():
        st.image(shot.read_bytes(), caption=shot.name, width=320)
        st.download_button("Download the snapshot", shot.read_bytes(), shot.name, "image/jpeg", key="shot_dl")


def _streams_full_warning() -> None:
    st.warning(f"All {job_service().limits.streams} live streams this server allows are in use: try again in a while.")


def _add_source(source: str, pipeline: FacePipeline, config: WatchConfig) -> None:
    """Start watching ``source`` if a server-wide live-stream slot is free; the runner gives it back when the
    stream ends (removed, played out or broken off)."""
    service, me = job_service(), session_id()
    runner = StreamRunner(source, _new_session(pipeline, config), realtime=True,
                          acquire=lambda: service.try_acquire_stream(me), release=lambda: service.release_stream(me))
    if not runner.start():
        _streams_full_warning()
        return
    st.session_state.setdefault(SOURCES_KEY, {})[uuid.uuid4().hex[:8]] = runner


def _end_source(key: str) -> None:
    """Stop a source (its live-stream slot is given back as its stream ends)."""
    st.session_state[SOURCES_KEY].pop(key).stop()


@st.fragment(run_every=READOUT_REFRESH_S)
def _source_readout(key: str, runner: StreamRunner, sound: bool) -> None:
    snapshot = runner.session.snapshot()
    live = runner.running and receiving(snapshot)
    if runner.error:
        st.warning(f"Stopped: {runner.error}")
    elif not runner.running:
        st.info("Ended." if snapshot.frames else "Not started.")
    if snapshot.last_frame_jpeg is not None:
        st.image(snapshot.last_frame_jpeg, width=480)
    if live:
        show_banner(snapshot, key, sound)
    show_figures(snapshot, runner.session.classes, live)
    show_history(snapshot, key, runner.session)


def _other_sources(pipeline: FacePipeline, config: WatchConfig, sound: bool) -> None:
    st.subheader("More sources")
    st.caption("Each source has its own people counts, alerts and event log. A clip plays as a live camera would.")
    upload, url = st.columns(2)
    clip = upload.file_uploader("A video clip", type=["mp4", "webm", "mov", "avi", "mkv"], key="webcam_clip")
    if clip is not None and upload.button("Watch this clip", key="webcam_watch_clip"):
        path = atomic_write(watch_folder() / "uploads" / f"{uuid.uuid4().hex[:8]}-{Path(clip.name).name}",
                            clip.getvalue())
        _add_source(str(path), pipeline, config)
    if may(Action.ADD_STREAM_URL):
        address = url.text_input("Camera URL or device", placeholder="rtsp://camera.local/stream, http://…, "
                                 "/dev/video0", key="webcam_url")
        if address and url.button("Watch this camera", key="webcam_watch_url"):
            _add_source(address.strip(), pipeline, config)
    else:
        with url:
            explain_refusal(Action.ADD_STREAM_URL)
    for key, runner in list(st.session_state.get(SOURCES_KEY, {}).items()):
        with st.container(border=True):
            head, stop = st.columns([4, 1])
            head.markdown(f"**{runner.source if is_url(runner.source) else Path(runner.source).name}**")
            if stop.button("Remove", key=f"remove_{key}"):
                _end_source(key)
                st.rerun()
            _source_readout(key, runner, sound)


def _retention() -> None:
    """What is kept and for how long; the owner may delete it all now."""
    removed = prune_watch_folder()
    folder = watch_folder()
    kept = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    st.caption(f"Recordings and snapshots are kept in `{folder}` for a limited time (MASKDET_WATCH_RETENTION_DAYS); "
               f"{len(kept)} kept now" + (f", {len(removed)} expired ones deleted." if removed else "."))
    if kept:
        if may(Action.DELETE):
            if st.button("Delete all recordings and snapshots", key="webcam_delete"):
                prune_watch_folder(days=0)
                st.rerun()
        else:
            explain_refusal(Action.DELETE)


st.title("🎥 Watch a place")
st.caption("Faces are tracked into people; each person gets one verdict from a vote over their frames. Browsers "
           "only allow the camera on `localhost` or over HTTPS.")

controls = st.columns([2, 1, 2, 1, 1])
name = choose_model(controls[0], key="webcam_model")
alert_after = controls[1].number_input("Alert after (s)", 0.0, 600.0, 3.0, 0.5, key="webcam_alert_after",
                                       help="Alert when a face without a mask stays in view this long.")
privacy = controls[2].selectbox("Privacy", list(Privacy), format_func=PRIVACY_LABELS.get, key="webcam_privacy",
                                help="Blur: every kept picture (recordings, snapshots, event faces) has faces "
                                     "blurred. Keep no pictures: only figures and the event log's text.")
sound = controls[3].checkbox("Sound", value=False, key="webcam_sound", help="Play a tone in this browser on an alert.")
mirror = controls[4].checkbox("Mirror", value=True, key="webcam_mirror", help="Flip left-right, like a mirror.")

try:
    pipeline = FacePipeline(get_classifier(name), get_detector(WATCH_DETECTOR, **LIVE_DETECTOR_OPTIONS))
except (CheckpointError, AssetUnavailableError) as exc:
    st.error(f"Cannot load the models: {exc}")
    st.stop()
st.caption(threshold_caption(pipeline.classifier.threshold))
try:
    ice = _ice_configuration()
except ValueError as exc:
    st.error(f"Invalid ICE server setting (MASKDET_ICE_SERVERS or ice_servers in secrets.toml): {exc}")
    st.stop()

config = WatchConfig(alert_after_s=float(alert_after), privacy=Privacy(privacy))
feed = _camera(pipeline, config)
feed.mirror = mirror
feed.session.configure(pipeline=pipeline, config=config)
for runner in st.session_state.get(SOURCES_KEY, {}).values():
    runner.session.configure(config=config)

video, readout = st.columns([3, 2])
with video:
    context = webrtc_streamer(
        key=STREAM_KEY,
        mode=WebRtcMode.SENDRECV,
        rtc_configuration=ice,
        media_stream_constraints=MEDIA_CONSTRAINTS,
        video_frame_callback=feed,
        async_processing=True,
        on_change=_on_stream_change,
        desired_playing_state=False if st.session_state.get(REFUSED_KEY) else None,
    )
    if st.session_state.get(REFUSED_KEY):
        _streams_full_warning()
    _recording_controls(feed.session, config.privacy)
with readout:
    st.subheader("Live readout")
    _camera_readout(feed.session, context, sound)

_other_sources(pipeline, config, sound)
_retention()

"""Webcam page: live mask detection on the browser's camera, with a live readout beside the video.

The browser streams its camera to the server over WebRTC (streamlit-webrtc); each frame is
detected, classified and annotated by a :class:`maskdet.inference.live.LiveProcessor` and sent back.
Models are loaded once per server (``ui.resources``), never per frame. Frames that arrive
while one is being processed are dropped, not queued (``async_processing``), so a slow model
lowers the frame rate instead of building a delay.

ICE servers: none by default (browser and server on one machine or LAN; works offline). A
remote deployment sets STUN / TURN servers in ``MASKDET_ICE_SERVERS`` (JSON list) or in
``.streamlit/secrets.toml`` (``[[ice_servers]]`` tables); the environment variable wins.

NOTE (threading): the frame callback runs on a streamlit-webrtc worker thread and never
touches Streamlit. It writes into the session's processor (lock-guarded); the readout is a
fragment that reads ``processor.snapshot()`` twice a second.
"""

from __future__ import annotations

import logging

import streamlit as st
from streamlit_webrtc import WebRtcMode, WebRtcStreamerContext, webrtc_streamer

from maskdet.zoo.assets import AssetUnavailableError
from maskdet.zoo.folders import CheckpointError
from maskdet.inference.live import LIVE_DETECTOR_OPTIONS, UNCERTAIN, LiveProcessor, LiveSnapshot, rtc_configuration
from maskdet.inference.pipeline import FacePipeline
from ui.models import choose_model
from ui.resources import get_classifier, get_detector
from ui.shell import setup_page

setup_page("Webcam")

logger = logging.getLogger(__name__)

STREAM_KEY = "webcam_stream"
PROCESSOR_KEY = "webcam_processor"
READOUT_REFRESH_S = 0.5
STALE_AFTER_S = 2.0  # no frame for this long: the "current frame" figures are no longer current
DEFAULT_THRESHOLD = 0.6
MEDIA_CONSTRAINTS = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False}


def _ice_configuration() -> dict:
    """ICE servers from ``MASKDET_ICE_SERVERS`` or ``st.secrets["ice_servers"]``; none by default."""
    try:
        secret = st.secrets.get("ice_servers")
    except FileNotFoundError:  # no secrets.toml at all
        secret = None
    return rtc_configuration(fallback=secret)


def _processor(pipeline: FacePipeline) -> LiveProcessor:
    """This session's processor (its figures are this viewer's), created on first use."""
    if PROCESSOR_KEY not in st.session_state:
        st.session_state[PROCESSOR_KEY] = LiveProcessor(pipeline)
    return st.session_state[PROCESSOR_KEY]


def _on_stream_change() -> None:
    """Figures count "since START": reset them when the stream starts playing."""
    context = st.session_state.get(STREAM_KEY)
    processor = st.session_state.get(PROCESSOR_KEY)
    if context is not None and processor is not None and context.state.playing:
        processor.reset()


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _receiving(snapshot: LiveSnapshot) -> bool:
    """True while frames keep arriving (the stream's "playing" flag can outlive a closed connection)."""
    return snapshot.seconds_since_frame is not None and snapshot.seconds_since_frame < STALE_AFTER_S


def _readout_lines(snapshot: LiveSnapshot, live: bool, classes: tuple[str, ...]) -> list[str]:
    """The readout's lines, per class of the model (``classes``)."""
    counts = snapshot.faces_now
    lines = [f"Frames processed: {snapshot.frames}", f"FPS: {snapshot.fps:.1f}"]
    if live:
        unsure = f", unsure {counts[UNCERTAIN]}" if counts[UNCERTAIN] else ""
        lines.append(f"Faces now: {', '.join(f'{name} {counts[name]}' for name in classes)}{unsure}")
        if not snapshot.face_in_view:
            lines.append("**No face in view**")
    averages = ", ".join(
        f"{name} {_percent(snapshot.average_confidence[name])} ({snapshot.faces_total[name]} faces)" for name in classes
    )
    lines.append(f"Average confidence since START: {averages}")
    if snapshot.median_ms is not None:
        lines.append(f"Processing time: {snapshot.median_ms:.0f} ms per frame (median)")
    return lines


@st.fragment(run_every=READOUT_REFRESH_S)
def _readout(processor: LiveProcessor, context: WebRtcStreamerContext) -> None:
    snapshot = processor.snapshot()
    playing = context.state.playing
    if not playing:
        st.info("Press **START** to stream your camera." if snapshot.frames == 0
                else "Stopped: the figures below are from the last stream. Press **START** to go again.")
    elif snapshot.frames == 0:
        st.info("Connecting… the first frame usually arrives within a few seconds.")
    elif not _receiving(snapshot):
        st.info(f"No frame for {snapshot.seconds_since_frame:.0f} s: the connection stalled or was closed. "
                "Press **STOP**, then **START**, if it does not resume.")
    for line in _readout_lines(snapshot, playing and _receiving(snapshot), processor.pipeline.classifier.classes):
        st.markdown(line)
    if snapshot.errors:
        st.warning(f"{snapshot.errors} frame(s) could not be processed and were shown without boxes; the stream "
                   f"keeps running. Last error: `{snapshot.last_error}`")


st.title("🎥 Live webcam")
st.caption("Your camera's frames are sent to this server, checked for masks and sent back annotated. Browsers only "
           "allow the camera on `localhost` or over HTTPS.")

controls = st.columns([2, 2, 1])
name = choose_model(controls[0], key="webcam_model")
threshold = controls[1].slider(
    "Confidence threshold", 0.5, 0.99, DEFAULT_THRESHOLD, 0.01, key="webcam_threshold",
    help="Faces the model is less sure about are boxed in grey as 'Unsure' and left out of the class figures.",
)
mirror = controls[2].checkbox("Mirror", value=True, key="webcam_mirror", help="Flip left-right, like a mirror.")

try:
    pipeline = FacePipeline(get_classifier(name), get_detector("centerface", **LIVE_DETECTOR_OPTIONS))
except (CheckpointError, AssetUnavailableError) as exc:
    st.error(f"Cannot load the models: {exc}")
    st.stop()
try:
    ice = _ice_configuration()
except ValueError as exc:
    st.error(f"Invalid ICE server setting (MASKDET_ICE_SERVERS or ice_servers in secrets.toml): {exc}")
    st.stop()

st.caption(f"A face is labelled with mask from p(with mask) ≥ {pipeline.classifier.threshold:g}, the model's "
           "operating threshold (set on the Compare page); the confidence threshold only greys out unsure faces.")
processor = _processor(pipeline)
processor.configure(pipeline=pipeline, threshold=threshold, mirror=mirror)

video, readout = st.columns([3, 2])
with video:
    context = webrtc_streamer(
        key=STREAM_KEY,
        mode=WebRtcMode.SENDRECV,
        rtc_configuration=ice,
        media_stream_constraints=MEDIA_CONSTRAINTS,
        video_frame_callback=processor.video_frame_callback,
        async_processing=True,
        on_change=_on_stream_change,
    )
with readout:
    st.subheader("Live readout")
    _readout(processor, context)

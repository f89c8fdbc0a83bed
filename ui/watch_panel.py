"""The readout of one watched stream (Webcam page): people in view and since the start per class, the
compliance ratio over time, the alert banner (and a sound), the event log with its downloads.

Everything here reads a :class:`maskdet.watch.WatchSnapshot` copied out under the session's lock; nothing
runs on a stream's worker thread.
"""

from __future__ import annotations

import io
import json
import wave

import numpy as np
import streamlit as st

from PIL import Image

from maskdet.inference.explain import explain
from maskdet.watch import UNDECIDED, Event, WatchSession, WatchSnapshot, events_csv
from ui.explanation import show_explanation

STALE_AFTER_S = 2.0  # no frame for this long: the "in view" figures are no longer current
LOG_ROWS = 30  # the page shows the latest events; the downloads hold them all
BEEP_HZ, BEEP_S, BEEP_RATE = 880, 0.4, 16000


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def count_line(counts: dict[str, int], classes: tuple[str, ...]) -> str:
    undecided = f" (undecided {counts[UNDECIDED]})" if counts.get(UNDECIDED) else ""
    return ", ".join(f"{name} {counts[name]}" for name in classes) + undecided


def receiving(snapshot: WatchSnapshot) -> bool:
    """True while frames keep arriving."""
    return snapshot.seconds_since_frame is not None and snapshot.seconds_since_frame < STALE_AFTER_S


@st.cache_data
def beep() -> bytes:
    """A short sine tone as WAV bytes: the alert sound."""
    t = np.arange(int(BEEP_S * BEEP_RATE)) / BEEP_RATE
    samples = (0.4 * np.sin(2 * np.pi * BEEP_HZ * t) * 32767).astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(BEEP_RATE)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def show_banner(snapshot: WatchSnapshot, key: str, sound: bool) -> None:
    """The alert banner while someone alerted on is in view; the sound once per new alert when ``sound``."""
    alerts = [event for event in snapshot.events if event.kind == "alert" and event.track in snapshot.active_alerts]
    if not alerts:
        return
    people = ", ".join(f"#{event.track} ({event.label})" for event in alerts)
    st.error(f"🚨 **No mask**: {people} in view", icon="🚨")
    heard = st.session_state.setdefault(f"{key}_heard", set())
    new = {event.track for event in alerts} - heard
    if new and sound:
        st.audio(beep(), format="audio/wav", autoplay=True)
    heard |= new


def show_figures(snapshot: WatchSnapshot, classes: tuple[str, ...], live: bool) -> None:
    """Frames, rate, people per class (in view, since start) and compliance."""
    lines = [f"Frames processed: {snapshot.frames}", f"FPS: {snapshot.fps if live else 0.0:.1f}"]
    if live:
        lines.append(f"People in view: {count_line(snapshot.in_view, classes)}")
        if not sum(snapshot.in_view.values()):
            lines.append("**No face in view**")
    lines.append(f"People since START: {count_line(snapshot.seen, classes)}")
    lines.append(f"Compliance: now {_percent(snapshot.compliance_now if live else None)}, "
                 f"since START {_percent(snapshot.compliance_seen)}")
    if snapshot.median_ms is not None:
        lines.append(f"Processing time: {snapshot.median_ms:.0f} ms per frame (median)")
    for line in lines:
        st.markdown(line)
    if snapshot.errors:
        st.warning(f"{snapshot.errors} frame(s) could not be processed and were shown without boxes; the stream "
                   f"keeps running. Last error: `{snapshot.last_error}`")


def _explain_faces(session: WatchSession, faces: list[Event], key: str) -> None:
    """The faces of the latest alerts, each with Integrated Gradients a click away (computed from the sharp face
    held in memory, never stored: in blur mode the picture shown is blurred, the explanation is not kept)."""
    columns = st.columns(min(6, len(faces)))
    for column, event in zip(columns, faces[-6:], strict=False):
        column.image(event.face_jpeg, caption=f"#{event.track} at {event.time:.1f} s", width=96)
        if column.button("Explain", key=f"{key}_explain_{event.track}"):
            face = session.face_of(event.track)
            if face is None:
                column.caption("That face is no longer held.")
            else:
                with st.spinner("Integrated Gradients…"):
                    st.session_state[f"{key}_explained"] = (event.track, explain(session.pipeline.classifier,
                                                                                 Image.fromarray(face)))
    explained = st.session_state.get(f"{key}_explained")
    if explained is not None:
        st.caption(f"Why person #{explained[0]} got their label:")
        show_explanation(explained[1])


def show_history(snapshot: WatchSnapshot, key: str, session: WatchSession) -> None:
    """Compliance over time, the event log (faces of alerts, explainable), CSV / JSON downloads."""
    ratios = [(round(t, 1), ratio) for t, ratio in snapshot.compliance if ratio is not None]
    if len(ratios) > 1:
        st.caption("Compliance of the people in view over time (seconds since START)")
        st.line_chart({"compliance": {t: ratio for t, ratio in ratios}}, height=160)
    if not snapshot.events:
        st.caption("Event log: nothing yet.")
        return
    rows = [event.to_json() for event in reversed(snapshot.events)][:LOG_ROWS]
    st.markdown(f"**Event log** (latest {len(rows)} of {len(snapshot.events)}; all in the downloads)")
    st.table(rows)
    faces = [event for event in snapshot.events if event.kind == "alert" and event.face_jpeg]
    if faces:
        _explain_faces(session, faces, key)
    left, right = st.columns(2)
    left.download_button("Event log (CSV)", events_csv(list(snapshot.events)), f"{key}-events.csv", "text/csv",
                         key=f"{key}_csv")
    right.download_button("Event log (JSON)", json.dumps([event.to_json() for event in snapshot.events], indent=1),
                          f"{key}-events.json", "application/json", key=f"{key}_json")

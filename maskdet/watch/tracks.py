"""People, not face-frames: faces tracked across frames, one verdict per person, counts, alerts and events.

A :class:`TrackBook` follows the faces of one stream. The tracker is ByteTrack (Roboflow's ``trackers``
package, on :class:`supervision.Detections`), never hand-written. Each confirmed track is a person:

- **verdict**: a vote over the per-frame labels of the track's classified frames (the labels the decision
  rule gave, :mod:`maskdet.zoo.decision`). It is decided after ``decide_after`` labels and then changes only
  when another class wins the majority, so a face whose label flickers for a frame keeps one verdict;
- **counts**: people in view now and seen since the start, per class of the model (two or three), and
  the compliance ratio (people with the positive class among the decided ones) sampled over time;
- **alerts**: a person whose verdict is not the positive class and who has been in view for
  ``alert_after_s`` seconds raises one alert;
- **events**: ``appears``, ``decided`` (and again when a verdict changes), ``alert``, ``leaves`` (unseen for
  ``leave_after_s``), each with the stream time and, for alerts, the track's clearest face so far (the
  most confident detection of the largest face), blurred or left out by the privacy mode.

Times are seconds of the stream (a clip's presentation time, or a live clock), passed in by the caller.
Not thread-safe: :class:`maskdet.watch.session.WatchSession` guards it with its lock.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from maskdet.inference.drawing import encode_jpeg
from maskdet.inference.faces import FacePrediction
from maskdet.settings import POSITIVE_CLASS
from maskdet.watch.privacy import Privacy, blur_whole

logger = logging.getLogger(__name__)

UNDECIDED = "undecided"
EVENT_KINDS = ("appears", "decided", "alert", "leaves")
CROP_SIDE = 160  # an event's face is kept at most this many pixels on its long side
COMPLIANCE_EVERY_S = 1.0  # one compliance sample per this many seconds of stream


@dataclass(frozen=True)
class WatchConfig:
    """How a stream is watched; every field is explained where it is used (module docstrings)."""

    alert_after_s: float = 3.0
    leave_after_s: float = 1.0
    decide_after: int = 3
    classify_every: int = 6  # frames between two classifications of a tracked face (session)
    # run the detector on every n-th frame; the tracker's boxes carry the others (session). 3: on a quiet machine
    # 2 gives one stream 59.9 frames/s, 3 gives 86.9 (4 streams 16.3 vs 24.3 each); the per-person verdict differs
    # by one scenes-dev person of 100 and not at all on ilc-dev (bench_streams, issue 25)
    detect_every: int = 3
    reclassify_below_iou: float = 0.5  # a face whose box moved this far from where it was classified: again
    frame_rate: float = 30.0
    privacy: Privacy = Privacy.OFF

    def __post_init__(self) -> None:
        if self.alert_after_s < 0 or self.leave_after_s <= 0:
            raise ValueError("alert_after_s must be >= 0 and leave_after_s > 0")
        if self.decide_after < 1 or self.classify_every < 1 or self.detect_every < 1:
            raise ValueError("decide_after, classify_every and detect_every must be at least 1")


@dataclass(frozen=True)
class Event:
    """One line of the event log: ``time`` in stream seconds, ``wall`` the local clock when it happened."""

    time: float
    kind: str
    track: int
    label: str | None
    wall: str
    face_jpeg: bytes | None = None  # alerts only; blurred in ``blur`` mode, None in ``no-pictures`` mode

    def to_json(self) -> dict:
        return {"event": self.kind, "time": round(self.time, 3), "track": self.track, "label": self.label,
                "wall": self.wall}


@dataclass
class Track:
    """One person: where and when the face was seen, its votes and verdict."""

    track_id: int
    first_seen: float
    last_seen: float
    box: tuple[int, int, int, int]
    votes: Counter[str] = field(default_factory=Counter)
    verdict: str | None = None
    alerted: bool = False
    left: bool = False
    last_face: FacePrediction | None = None
    classified_box: tuple[int, int, int, int] | None = None
    frames_since_classified: int = 0
    face: np.ndarray | None = None
    face_quality: float = -1.0

    def in_view_for(self, now: float) -> float:
        return now - self.first_seen


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _wall_clock() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


class TrackBook:
    """The tracks, counts and events of one stream; see the module."""

    def __init__(self, classes: tuple[str, ...], config: WatchConfig | None = None) -> None:
        from trackers import ByteTrackTracker

        from maskdet.inference.detector import DEFAULT_THRESHOLD

        self.classes = tuple(classes)
        self.config = config or WatchConfig()
        # Fixed-rate mode (one step per detected frame): with timestamps, a gap of two frames counts as a
        # missed frame and a new face is never confirmed. ``leave_after_s`` in detected frames. Any face the
        # product's detector reports may start a track (ByteTrack's 0.5 left faces scored 0.39-0.5, which the
        # per-frame path labels, without a person: bench_streams, ilc-dev).
        detected_rate = self.config.frame_rate / self.config.detect_every
        self._tracker = ByteTrackTracker(
            lost_track_buffer=max(1, round(self.config.leave_after_s * detected_rate)), frame_rate=detected_rate,
            track_activation_threshold=DEFAULT_THRESHOLD, high_conf_det_threshold=DEFAULT_THRESHOLD,
            minimum_consecutive_frames=2,
        )
        self.tracks: dict[int, Track] = {}
        self.events: list[Event] = []
        self.compliance: list[tuple[float, float | None]] = []  # (time, ratio among people in view now)
        self.now = 0.0

    # --- tracking -------------------------------------------------------------------------------------

    def assign(self, boxes: list[tuple[int, int, int, int]], scores: list[float]) -> list[int | None]:
        """The track of each face detected on this frame (None: not confirmed yet, e.g. its first frame), in
        input order; call once per detected frame."""
        import supervision as sv

        if not boxes:
            self._tracker.update(sv.Detections.empty())
            return []
        detections = sv.Detections(xyxy=np.asarray(boxes, dtype=float), confidence=np.asarray(scores, dtype=float),
                                   data={"index": np.arange(len(boxes))})
        tracked = self._tracker.update(detections)
        ids: list[int | None] = [None] * len(boxes)
        for index, track_id in zip(tracked.data["index"], tracked.tracker_id, strict=True):
            ids[int(index)] = None if track_id < 0 else int(track_id)
        return ids

    def carried_boxes(self, fraction: float) -> dict[int, tuple[int, int, int, int]]:
        """Where the tracker expects each track seen on the last detected frame ``fraction`` of a detected-frame
        step later: its Kalman box plus ``fraction`` x its velocity. What the frames between two detections
        draw, so boxes follow a moving face instead of lagging up to ``detect_every - 1`` frames behind.

        ByteTrack's tracklets keep the state ``[x1, y1, x2, y2, vx1, vy1, vx2, vy2]`` (``trackers`` 2.6's
        XYXY estimator, per detected-frame step); only read here, never changed.
        """
        boxes = {}
        for tracklet in self._tracker.tracks:
            if tracklet.tracker_id < 0 or tracklet.time_since_update > 0:
                continue
            state = tracklet.state_estimator.kf.state[:8, 0]
            boxes[int(tracklet.tracker_id)] = tuple(int(round(v)) for v in state[:4] + fraction * state[4:])
        return boxes

    def needs_label(self, track_id: int | None, box: tuple[int, int, int, int]) -> bool:
        """Whether a face must be classified on this frame: new or unconfirmed, undecided, due, or moved a lot."""
        track = self.tracks.get(track_id) if track_id is not None else None
        if track is None or track.last_face is None or track.classified_box is None:
            return True
        return (track.verdict is None or track.frames_since_classified + 1 >= self.config.classify_every
                or box_iou(track.classified_box, box) < self.config.reclassify_below_iou)

    def last_face(self, track_id: int) -> FacePrediction:
        """The last classified face of a track (its label and confidences, reused between classifications)."""
        face = self.tracks[track_id].last_face
        assert face is not None
        return face

    # --- votes, counts, events ------------------------------------------------------------------------

    def observe(self, faces: list[FacePrediction], fresh: list[bool], t: float,
                image: np.ndarray | None = None) -> tuple[list[FacePrediction], list[Event]]:
        """Record one frame's faces (``track_id`` set by :meth:`assign`; ``fresh[i]``: classified on this frame).

        Returns the faces as drawn, labelled with their person's verdict where decided (their confidence
        is then the share of the track's votes, and a frame that voted otherwise keeps no probabilities), and
        the events of this frame. ``image`` (the frame) gives the tracks' clearest faces for the event log.
        """
        self.now = t
        events: list[Event] = []
        shown: list[FacePrediction] = []
        for face, is_fresh in zip(faces, fresh, strict=True):
            if face.track_id is None:
                shown.append(face)
                continue
            track = self.tracks.get(face.track_id)
            if track is None:
                track = self.tracks[face.track_id] = Track(face.track_id, t, t, face.box)
                events.append(self._event(t, "appears", track))
            track.last_seen, track.box, track.left = t, face.box, False
            if is_fresh:
                track.last_face, track.classified_box, track.frames_since_classified = face, face.box, 0
                track.votes[face.label] += 1
                events.extend(self._update_verdict(track, t))
            else:
                track.frames_since_classified += 1
            if image is not None and self.config.privacy.keeps_pictures:
                self._keep_clearest(track, face, image)
            shown.append(self._as_verdict(face, track))
        events.extend(self._alerts_and_leaves(t))
        self._sample_compliance(t)
        self.events.extend(events)
        return shown, events

    def _update_verdict(self, track: Track, t: float) -> list[Event]:
        total = sum(track.votes.values())
        if total < self.config.decide_after:
            return []
        leader, votes = track.votes.most_common(1)[0]
        if track.verdict is not None and track.votes[track.verdict] >= votes:
            return []  # a tie keeps the verdict: it changes only when another class wins the majority
        track.verdict = leader
        return [self._event(t, "decided", track)]

    def _as_verdict(self, face: FacePrediction, track: Track) -> FacePrediction:
        if track.verdict is None:
            return face
        share = track.votes[track.verdict] / sum(track.votes.values())
        if track.verdict == face.label:
            return replace(face, confidence=share)
        # The person's verdict is not this frame's: the frame's probabilities do not speak for it (drawn, they
        # would read as a frame the threshold held back), so the box says the verdict and its share of votes.
        return replace(face, label=track.verdict, confidence=share, probabilities={})

    def _keep_clearest(self, track: Track, face: FacePrediction, image: np.ndarray) -> None:
        x0, y0, x1, y1 = face.box
        quality = face.face_score * min(x1 - x0, y1 - y0)
        if quality <= track.face_quality or x1 <= x0 or y1 <= y0:
            return
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        track.face, track.face_quality = crop, quality

    def _face_jpeg(self, track: Track) -> bytes | None:
        if track.face is None or not self.config.privacy.keeps_pictures:
            return None
        face = blur_whole(track.face) if self.config.privacy is Privacy.BLUR else track.face
        return encode_jpeg(face, max_side=CROP_SIDE)

    def _alerts_and_leaves(self, t: float) -> list[Event]:
        events = []
        for track in self.tracks.values():
            if track.left:
                continue
            if t - track.last_seen > self.config.leave_after_s:
                track.left = True
                events.append(self._event(t, "leaves", track))
            elif (not track.alerted and track.verdict is not None and track.verdict != POSITIVE_CLASS
                  and track.in_view_for(t) >= self.config.alert_after_s):
                track.alerted = True
                events.append(self._event(t, "alert", track, face=self._face_jpeg(track)))
        return events

    def _event(self, t: float, kind: str, track: Track, face: bytes | None = None) -> Event:
        return Event(time=t, kind=kind, track=track.track_id, label=track.verdict, wall=_wall_clock(), face_jpeg=face)

    def _sample_compliance(self, t: float) -> None:
        if self.compliance and t - self.compliance[-1][0] < COMPLIANCE_EVERY_S:
            return
        self.compliance.append((t, compliance_ratio(self.counts_in_view())))

    def in_view(self) -> list[Track]:
        return [track for track in self.tracks.values() if not track.left]

    def counts_in_view(self) -> dict[str, int]:
        """People in view now per class (and ``undecided``)."""
        return self._count(self.in_view())

    def counts_seen(self) -> dict[str, int]:
        """People seen since the start per class (their verdict now, or when they left), and ``undecided``."""
        return self._count(list(self.tracks.values()))

    def _count(self, tracks: list[Track]) -> dict[str, int]:
        counts = dict.fromkeys((*self.classes, UNDECIDED), 0)
        for track in tracks:
            counts[track.verdict or UNDECIDED] += 1
        return counts

    def active_alerts(self) -> list[int]:
        """Tracks in view that raised an alert (the banner shows them)."""
        return [track.track_id for track in self.in_view() if track.alerted]

    def summary(self) -> dict:
        """``{"people": {class: n}, "undecided", "compliance", "alerts"}`` over the whole stream."""
        seen = self.counts_seen()
        return {"people": {name: seen[name] for name in self.classes}, "undecided": seen[UNDECIDED],
                "compliance": compliance_ratio(seen), "alerts": sum(event.kind == "alert" for event in self.events)}

    def finish(self) -> list[Event]:
        """End of stream: every track still in view leaves."""
        events = []
        for track in self.in_view():
            track.left = True
            events.append(self._event(self.now, "leaves", track))
        self.events.extend(events)
        return events


def compliance_ratio(counts: dict[str, int]) -> float | None:
    """People of the positive class among the decided ones (None when nobody is decided)."""
    decided = sum(n for name, n in counts.items() if name != UNDECIDED)
    return counts.get(POSITIVE_CLASS, 0) / decided if decided else None


def events_csv(events: list[Event]) -> str:
    """The event log as CSV text (time, wall, event, track, label)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["time", "wall", "event", "track", "label"])
    writer.writeheader()
    for event in events:
        writer.writerow(event.to_json())
    return buffer.getvalue()

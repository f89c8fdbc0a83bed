"""Watch a place, not a frame: faces tracked into people, one verdict each, counts, alerts, privacy.

- :mod:`maskdet.watch.tracks`: :class:`TrackBook` (ByteTrack tracks, per-person vote, counts, compliance,
  alerts, the event log) and :class:`WatchConfig`;
- :mod:`maskdet.watch.session`: :class:`WatchSession`, one stream's track-aware inference (detect on some
  frames, classify a face only when its track needs it) with a thread-safe readout;
- :mod:`maskdet.watch.privacy`: :class:`Privacy` modes and face blurring.

Sources (clips, camera URLs, devices) and recordings are in :mod:`maskdet.video.stream`, a layer above.

May import: :mod:`maskdet.inference`, :mod:`maskdet.zoo`, :mod:`maskdet.data` and the bottom modules.
"""

from maskdet.watch.privacy import Privacy, blur_faces
from maskdet.watch.session import WATCH_DETECTOR, WatchSession, WatchSnapshot
from maskdet.watch.tracks import UNDECIDED, Event, TrackBook, WatchConfig, compliance_ratio, events_csv

__all__ = ["UNDECIDED", "WATCH_DETECTOR", "Event", "Privacy", "TrackBook", "WatchConfig", "WatchSession", "WatchSnapshot",
           "blur_faces", "compliance_ratio", "events_csv"]

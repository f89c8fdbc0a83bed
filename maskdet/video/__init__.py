"""Video files: decode clips with PyAV, run the face pipeline on their frames, write annotated H.264 clips.

- :mod:`maskdet.video.decode`: :class:`VideoReader` (frames of mp4, webm, mov, avi, mkv, or a clear
  :class:`VideoDecodeError`, raised after the readable frames of a truncated file);
- :mod:`maskdet.video.encode`: :class:`AnnotatedVideoWriter` (H.264 mp4 that browsers play);
- :mod:`maskdet.video.analyse`: :func:`analyse_video` (frame results) and :func:`predict_video` (the
  ``predict --json`` records of a clip);
- :mod:`maskdet.video.results`: :func:`analyse_to_folder` (annotated clip, unmasked thumbnails and faces per
  frame written into a folder, what the ``analyse-video`` job of :mod:`maskdet.jobs` runs) and
  :func:`read_results` (the Video page reads them back).

May import: :mod:`maskdet.inference`, :mod:`maskdet.zoo`, :mod:`maskdet.data` and the bottom modules.
"""

from maskdet.video.analyse import FrameResult, analyse_video, predict_video
from maskdet.video.decode import VIDEO_SUFFIXES, VideoDecodeError, VideoInfo, VideoReader, is_video_path
from maskdet.video.encode import AnnotatedVideoWriter

__all__ = [
    "VIDEO_SUFFIXES", "AnnotatedVideoWriter", "FrameResult", "VideoDecodeError", "VideoInfo", "VideoReader",
    "analyse_video", "is_video_path", "predict_video",
]

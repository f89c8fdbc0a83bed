"""Photo page: upload photos, see every face boxed and labelled, and why the model decided.

Each upload goes through :func:`maskdet.inference.pipeline.analyse_photo` (decode with EXIF orientation,
detect, crop, classify all faces in one batch, draw); each face is explained with
:func:`maskdet.inference.explain.explain` (Integrated Gradients by default; SmoothGrad, Occlusion or Grad-CAM
behind a selector). Both are cached by content, model and settings, so moving one face's
slider recomputes only that face. A file that is not a usable image gets its own error message;
the other files are processed as usual. Each photo may be up to ``UPLOAD_LIMIT_MB``, the
size :func:`maskdet.data.images.open_image` decodes (the browser refuses bigger files before
sending them); ``server.maxUploadSize`` in ``.streamlit/config.toml`` is the larger limit
zipped data sets need.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import PurePath

import streamlit as st
from PIL import Image

from maskdet.zoo.assets import AssetUnavailableError
from maskdet.zoo.folders import CheckpointError
from maskdet.inference.predictor import Predictor
from maskdet.inference.explain import BASELINES, DEFAULT_BASELINE, METHODS, Explanation, ExplanationUnsupported, explain
from maskdet.data.images import MAX_FILE_BYTES, ImageDecodeError
from maskdet.inference.photo import analyse_photo, compact_photo, PhotoResult
from maskdet.inference.pipeline import FacePipeline
from maskdet.inference.drawing import LABEL_TEXT
from ui.explanation import show_explanation
from ui.markup import code, plain
from ui.models import choose_model
from ui.resources import get_classifier, get_detector
from ui.shell import setup_page

setup_page("Photo")

logger = logging.getLogger(__name__)

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"]
UPLOAD_LIMIT_MB = MAX_FILE_BYTES // 2**20  # Streamlit's MB are MiB
DETECTORS = {
    "centerface": "Find the faces (CenterFace)",
    "whole-image": "Each photo is one face (already cropped)",
}
ANALYSIS_CACHE_ENTRIES = 32  # compact results: a 24 MP photo takes a few MB (was ~150 MB of arrays and PNG)
EXPLANATION_CACHE_ENTRIES = 256
MIN_STEPS, STEP = 4, 4
AUTO_EXPLAIN_FACES = 6  # group photos: faces after these are explained on request (~1 s each)


@st.cache_data(show_spinner=False, max_entries=ANALYSIS_CACHE_ENTRIES)
def _analyse(digest: str, name: str, model_key: str, detector: str, _data: bytes,
             _pipeline: FacePipeline) -> PhotoResult:
    """The compact result of one upload; keyed by content digest, model weights and detector."""
    return compact_photo(analyse_photo(_data, _pipeline, name=name), _pipeline.classifier.input)


@st.cache_data(show_spinner=False, max_entries=EXPLANATION_CACHE_ENTRIES)
def _explain(digest: str, face: int, model_key: str, detector: str, label: str, method: str, steps: int | None,
             baseline: str, _classifier: Predictor, _crop: Image.Image) -> Explanation:
    """The explanation of one face crop; keyed by photo, face, model and every setting."""
    return explain(_classifier, _crop, method=method, target=label, steps=steps, baseline=baseline)


def _show_face(index: int, analysis: PhotoResult, key: str, model_key: str, detector: str,
               classifier: Predictor) -> None:
    """One face: its verdict, the explanation settings, and Original | heatmap | overlay."""
    face, crop = analysis.faces[index], analysis.crops[index]
    odds = " · ".join(f"{LABEL_TEXT[name]} {p:.1%}" for name, p in face.probabilities.items())
    st.markdown(f"**Face {index + 1}**: {LABEL_TEXT[face.label]}, {face.confidence:.1%} confident "
                f"(detector score {face.face_score:.2f}, box {list(face.box)})  \n{odds}")
    if index >= AUTO_EXPLAIN_FACES and not st.toggle("Explain this face", key=f"{key}_explain"):
        return
    settings = st.columns(4)
    method = settings[0].selectbox("Explanation", list(METHODS), format_func=lambda m: METHODS[m].title,
                                   key=f"{key}_method", help="How the pixels that drove the decision are found.")
    spec = METHODS[method]
    steps = None
    if spec.steps_label:
        steps = settings[1].slider(spec.steps_label, MIN_STEPS, 4 * spec.default_steps, spec.default_steps, STEP,
                                   key=f"{key}_{method}_steps", help="More is more precise and slower.")
    baseline = DEFAULT_BASELINE
    if spec.uses_baseline:
        baseline = settings[2].selectbox("Baseline", list(BASELINES), format_func=lambda b: BASELINES[b][0],
                                         key=f"{key}_baseline", help="The 'absence of evidence' reference image.")
    target = settings[3].selectbox("Class to explain", classifier.classes, classifier.classes.index(face.label),
                                   format_func=LABEL_TEXT.get, key=f"{key}_target",
                                   help="Which class's evidence to show (default: the face's label).")
    try:
        with st.spinner(f"{spec.title} for face {index + 1}…"):
            result = _explain(key, index, model_key, detector, target, method, steps, baseline, classifier, crop)
    except ExplanationUnsupported as exc:
        st.warning(str(exc))
        return
    show_explanation(result)


st.title("🖼️ Photo")
st.caption("Upload photos: every face is found, labelled (with a mask, without, or — for three-class models — "
           "mask worn incorrectly) and explained pixel by pixel.")

controls = st.columns(2)
model_name = choose_model(controls[0], key="photo_model")
detector_name = controls[1].radio("Faces", list(DETECTORS), format_func=DETECTORS.get, key="photo_detector",
                                  horizontal=True)
try:
    classifier = get_classifier(model_name)
    pipeline = FacePipeline(classifier, get_detector(detector_name))
except (CheckpointError, AssetUnavailableError) as exc:
    st.error(f"Cannot load the models: {exc}")
    st.stop()
# The operating threshold is part of the key: saving a new one on the Compare page relabels cached photos.
model_key = f"{classifier.loaded.metadata['weights']['sha256']}@{classifier.threshold:g}"
st.caption(f"A face is labelled with mask from p(with mask) ≥ {classifier.threshold:g}, the model's operating "
           "threshold (set on the Compare page).")

uploads = st.file_uploader("Photos", type=UPLOAD_TYPES, accept_multiple_files=True, key="photo_uploads",
                           max_upload_size=UPLOAD_LIMIT_MB,
                           help="JPEG, PNG, WebP, GIF, BMP or TIFF; several at once.")
if not uploads:
    st.info("Upload one or more photos to find the faces in them.")
    st.stop()

for number, upload in enumerate(uploads):
    st.divider()
    st.subheader(plain(upload.name))
    data = upload.getvalue()
    digest = f"{number}-{hashlib.sha256(data).hexdigest()[:16]}"  # also unique widget keys for duplicate uploads
    try:
        with st.spinner(f"Finding faces in {plain(upload.name)}…"):
            analysis = _analyse(digest, upload.name, model_key, detector_name, data, pipeline)
    except ImageDecodeError as exc:
        st.error(f"Cannot read {code(upload.name)}: {plain(exc.reason)}")
        continue
    counts = {label: sum(f.label == label for f in analysis.faces) for label in classifier.classes}
    info = analysis.info
    summary = ", ".join(f"{n} {LABEL_TEXT[label]}" for label, n in counts.items() if n) or "no face found"
    st.markdown(f"{summary} · {analysis.width}x{analysis.height} {info.format} ({info.mode}"
                f"{f', {info.frames} frames, first shown' if info.frames > 1 else ''})")
    st.image(analysis.shown)
    st.download_button("Download the annotated image", analysis.download,
                       file_name=f"{PurePath(upload.name).stem}-annotated.jpg", mime="image/jpeg",
                       key=f"{digest}_download")
    if not analysis.faces:
        st.info("No face found. If this photo is a close-up of one face, choose 'Each photo is one face'.")
    for index in range(len(analysis.faces)):
        _show_face(index, analysis, f"{digest}_{index}", model_key, detector_name, classifier)

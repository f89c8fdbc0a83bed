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
from collections.abc import Sequence
from pathlib import PurePath

import pandas as pd
import streamlit as st
from PIL import Image

from maskdet.zoo.assets import AssetUnavailableError
from maskdet.zoo.folders import CheckpointError
from maskdet.inference.predictor import Predictor
from maskdet.inference.explain import (BASELINES, DEFAULT_BASELINE, IG_TIME_BUDGET_S, IG_TOLERANCE, METHODS, Explanation,
                                       ExplanationUnsupported, explain)
from maskdet.data.images import MAX_FILE_BYTES, ImageDecodeError
from maskdet.data.local import example_photos
from maskdet.inference.drawing import label_scale, label_text
from maskdet.inference.faces import FacePrediction
from maskdet.inference.photo import analyse_photo, compact_photo, PhotoResult
from maskdet.inference.pipeline import FacePipeline
from maskdet.inference.drawing import LABEL_TEXT
from maskdet.settings import POSITIVE_CLASS, current_settings
from ui.explanation import show_explanation
from ui.markup import code, plain
from ui.models import choose_model, threshold_caption
from ui.resources import get_classifier, get_detector
from ui.shell import setup_page
from ui.tables import PERCENT, styled

setup_page("Photo")

logger = logging.getLogger(__name__)

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"]
UPLOAD_LIMIT_MB = MAX_FILE_BYTES // 2**20  # Streamlit's MB are MiB
DETECTORS = {
    "centerface": "Find the faces (CenterFace)",
    "whole-image": "Each photo is one face (already cropped)",
}
ANALYSES_KEY = "photo_analyses"  # this session's compact results (a 24 MP photo takes a few MB)
EXPLANATION_CACHE_ENTRIES = 256
MIN_STEPS, STEP = 4, 4
AUTO_STEPS, AUTO_STEPS_METHOD = "auto", "integrated_gradients"  # IG chooses its steps to converge (explain.py)
AUTO_EXPLAIN_FACES = 6  # group photos: faces after these are explained on request (~1 s each)
EXPANDED_FACES = 2  # photos with more faces show their summary and photo first, every face's details collapsed


def _analyse(digest: str, name: str, model_key: str, detector: str, data: bytes,
             pipeline: FacePipeline) -> PhotoResult:
    """The compact result of one upload, kept in this session (keyed by content digest, model weights and
    detector) for as long as the photo is on the page: however many photos there are (up to the session's cap),
    a rerun analyses none again, and one visitor's photos never push out another's."""
    kept: dict[tuple[str, str, str], PhotoResult] = st.session_state.setdefault(ANALYSES_KEY, {})
    key = (digest, model_key, detector)
    if key not in kept:
        kept[key] = compact_photo(analyse_photo(data, pipeline, name=name), pipeline.classifier.input)
    return kept[key]


def _forget_removed(digests: set[str]) -> None:
    """Drop the kept results of photos no longer uploaded (memory stays bounded by the photos on the page)."""
    kept: dict = st.session_state.setdefault(ANALYSES_KEY, {})
    for key in [key for key in kept if key[0] not in digests]:
        del kept[key]


@st.cache_data(show_spinner=False, max_entries=EXPLANATION_CACHE_ENTRIES)
def _explain(digest: str, face: int, model_key: str, detector: str, label: str, method: str, steps: int | None,
             baseline: str, _classifier: Predictor, _crop: Image.Image) -> Explanation:
    """The explanation of one face crop; keyed by photo, face, model and every setting."""
    return explain(_classifier, _crop, method=method, target=label, steps=steps, baseline=baseline)


def faces_table(faces: list[FacePrediction], classes: Sequence[str]) -> pd.DataFrame:
    """One row per face, numbered as in the details below: verdict, each class's probability, detector score, box.

    Every class's probability, not the verdict's alone: a face the operating threshold kept from masked has a
    verdict whose own probability can be small, and the row shows the masked probability that was not enough."""
    return pd.DataFrame({"face": range(1, len(faces) + 1), "verdict": [LABEL_TEXT[f.label] for f in faces],
                         **{f"p({LABEL_TEXT[c]})": [f.probabilities[c] for f in faces] for c in classes},
                         "detector score": [f.face_score for f in faces], "box": [str(list(f.box)) for f in faces]})


def _show_face(index: int, analysis: PhotoResult, key: str, model_key: str, detector: str,
               classifier: Predictor) -> None:
    """One face: its verdict, the explanation settings, and Original | heatmap | overlay."""
    face, crop = analysis.faces[index], analysis.crops[index]
    odds = " · ".join(f"{LABEL_TEXT[name]} {p:.1%}" for name, p in face.probabilities.items())
    held_back = face.held_back
    how = "by the operating threshold" if held_back is not None else f"{face.confidence:.1%} confident"
    st.markdown(f"**Face {index + 1}**: {LABEL_TEXT[face.label]}, {how} "
                f"(detector score {face.face_score:.2f}, box {list(face.box)})  \n{odds}")
    if held_back is not None:
        st.caption(f"{LABEL_TEXT[POSITIVE_CLASS]} is the likeliest at {held_back:.1%}, but under this model's "
                   f"operating threshold {classifier.threshold:g}: a bare or incorrectly masked face called masked is "
                   "the costly error, so the face gets the likelier of the other classes.")
    if index >= AUTO_EXPLAIN_FACES and not st.toggle("Explain this face", key=f"{key}_explain"):
        return
    settings = st.columns(4)
    method = settings[0].selectbox("Explanation", list(METHODS), format_func=lambda m: METHODS[m].title,
                                   key=f"{key}_method", help="How the pixels that drove the decision are found.")
    spec = METHODS[method]
    steps = None
    if spec.steps_label:
        choices = list(range(MIN_STEPS, 4 * spec.default_steps + 1, STEP))
        if method == AUTO_STEPS_METHOD:
            choices.insert(0, AUTO_STEPS)
        chosen = settings[1].select_slider(
            spec.steps_label, choices, AUTO_STEPS if method == AUTO_STEPS_METHOD else spec.default_steps,
            key=f"{key}_{method}_steps", help="More is more precise and slower. Auto: as many as bring the "
            f"convergence error under {IG_TOLERANCE:.0%} of the change explained, within {IG_TIME_BUDGET_S:g} s.")
        steps = None if chosen == AUTO_STEPS else chosen
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
st.caption(threshold_caption(classifier.threshold))

uploads = st.file_uploader("Photos", type=UPLOAD_TYPES, accept_multiple_files=True, key="photo_uploads",
                           max_upload_size=UPLOAD_LIMIT_MB,
                           help="JPEG, PNG, WebP, GIF, BMP or TIFF; several at once.")
photos = [(upload.name, upload.getvalue()) for upload in uploads]
if not photos:
    examples = {path.name: path for path in example_photos()}
    example = st.selectbox("…or try an example photo", list(examples), index=None, key="photo_example",
                           placeholder="A street photo from the built-in sample (CC0)")
    if example is None:
        st.info("Upload one or more photos to find the faces in them, or try an example photo.")
        st.stop()
    photos = [(example, examples[example].read_bytes())]

cap = current_settings().session_photos
if len(photos) > cap:
    st.warning(f"{len(photos)} photos uploaded: the first {cap} are analysed (the most one session may have "
               "at once); remove some to see the others.")
    photos = photos[:cap]
digests = [hashlib.sha256(data).hexdigest()[:16] for _, data in photos]
_forget_removed(set(digests))
for number, ((name, data), content) in enumerate(zip(photos, digests, strict=True)):
    st.divider()
    st.subheader(plain(name))
    digest = f"{number}-{content}"  # unique widget keys, even for duplicate uploads
    try:
        with st.spinner(f"Finding faces in {plain(name)}…"):
            analysis = _analyse(content, name, model_key, detector_name, data, pipeline)
    except ImageDecodeError as exc:
        st.error(f"Cannot read {code(name)}: {plain(exc.reason)}")
        continue
    counts = {label: sum(f.label == label for f in analysis.faces) for label in classifier.classes}
    info = analysis.info
    summary = ", ".join(f"{n} {LABEL_TEXT[label]}" for label, n in counts.items() if n) or "no face found"
    st.markdown(f"{summary} · {analysis.width}x{analysis.height} {info.format} ({info.mode}"
                f"{f', {info.frames} frames, first shown' if info.frames > 1 else ''})")
    st.image(analysis.shown, width="stretch")  # small photos enlarged to the page's width; fullscreen on hover
    unlabelled = [i for i, f in enumerate(analysis.faces)
                  if label_scale(label_text(f), f.box[2] - f.box[0], f.box[3] - f.box[1], 1.0) is None]
    if unlabelled:
        st.caption(f"{len(unlabelled)} face(s) too small for a readable label keep their coloured box alone: "
                   "the faces' table below gives each one's verdict and place.")
    st.download_button("Download the annotated image", analysis.download,
                       file_name=f"{PurePath(name).stem}-annotated.jpg", mime="image/jpeg",
                       key=f"{digest}_download")
    if not analysis.faces:
        st.info("No face found. If this photo is a close-up of one face, choose 'Each photo is one face'.")
        continue
    with st.expander(f"Every face ({len(analysis.faces)}): verdicts and explanations",
                     expanded=len(analysis.faces) <= EXPANDED_FACES):
        table = faces_table(analysis.faces, classifier.classes)
        st.dataframe(styled(table, {column: PERCENT for column in table.columns if column.startswith("p(")}
                            | {"detector score": "{:.2f}"}, text_columns=("verdict", "box")),
                     hide_index=True, key=f"{digest}_faces")
        for index in range(len(analysis.faces)):
            _show_face(index, analysis, f"{digest}_{index}", model_key, detector_name, classifier)

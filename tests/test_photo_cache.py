"""The Photo page keeps compact results (issue 18, defect 9): encoded images and model-size crops, no arrays."""

from __future__ import annotations

import io
import pickle

import numpy as np
from PIL import Image

from maskdet.inference.predictor import load_classifier
from maskdet.inference.detector import get_detector
from maskdet.inference.explain import explain
from maskdet.data.images import load_rgb
from maskdet.inference.photo import analyse_photo, compact_photo, DISPLAY_MAX_SIDE
from maskdet.inference.pipeline import FacePipeline


def test_a_24_megapixel_photo_is_cached_in_a_few_megabytes_and_explained_the_same(tiny_mobilenet,
                                                                                  held_out_faces) -> None:
    classifier = load_classifier(str(tiny_mobilenet))
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(60, 200, size=(500, 750, 3), dtype=np.uint8)).resize((6000, 4000))
    photo.paste(load_rgb(held_out_faces["with_mask"][0]).resize((1800, 1800)), (2000, 1000))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    pipeline = FacePipeline(classifier, get_detector("whole-image"))
    analysis = analyse_photo(buffer.getvalue(), pipeline, name="big.jpg")
    result = compact_photo(analysis, classifier.input)

    kept, before = len(pickle.dumps(result)), len(pickle.dumps(analysis))  # st.cache_data stores pickles
    assert kept < 8 * 2**20 and before > 10 * kept, (kept, before)
    shown = Image.open(io.BytesIO(result.shown))
    assert shown.format == "JPEG" and max(shown.size) == DISPLAY_MAX_SIDE
    assert Image.open(io.BytesIO(result.download)).size == (6000, 4000)
    assert (result.width, result.height, result.faces) == (6000, 4000, analysis.faces)
    assert result.crops[0].size == (classifier.input.size,) * 2
    original = explain(classifier, analysis.crops[0], method="integrated_gradients", steps=4)
    compact = explain(classifier, result.crops[0], method="integrated_gradients", steps=4)
    np.testing.assert_array_equal(compact.attribution, original.attribution)

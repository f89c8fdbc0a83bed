"""Explanations of real decisions: a real tiny MobileNetV2 on held-out real face crops.

The key behavioural check: paste a masked face on a larger background, ask why the model says
"with_mask", and the attribution must sit on the face, not on the background.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from maskdet.inference.explain import (
    BASELINES,
    DEFAULT_IG_STEPS,
    IG_MAX_STEPS,
    IG_TIME_BUDGET_S,
    IG_TOLERANCE,
    METHODS,
    ExplanationUnsupported,
    explain,
    explainer_for,
)
from maskdet.data.images import load_rgb
from maskdet.inference.predictor import Predictor, load_classifier
from maskdet.settings import CLASSES


@pytest.fixture(scope="module")
def classifier(tiny_mobilenet) -> Predictor:
    return load_classifier(str(tiny_mobilenet))


@pytest.fixture(scope="module")
def masked_face(held_out_faces) -> Image.Image:
    return load_rgb(held_out_faces["with_mask"][0])


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_returns_maps_at_input_resolution(classifier: Predictor, masked_face: Image.Image,
                                                       method: str) -> None:
    result = explain(classifier, masked_face, method=method)
    size = classifier.input.size
    assert result.method == method
    assert result.attribution.shape == (size, size) and result.attribution.dtype == np.float32
    assert np.isfinite(result.attribution).all() and np.abs(result.attribution).sum() > 0
    for picture in (result.image, result.heatmap, result.overlay):
        assert picture.shape == (size, size, 3) and picture.dtype == np.uint8
    assert not np.array_equal(result.overlay, result.image)
    expected = CLASSES[int(classifier.predict_proba([masked_face])[0].argmax())]
    assert result.label == expected == "with_mask"
    assert 0.5 < result.probability <= 1.0
    if method == "integrated_gradients":
        assert result.settings["baseline"] == "blur" and result.settings["steps"] >= DEFAULT_IG_STEPS
        # Completeness survives the channel sum: attributions add up to F(input) - F(baseline) (+ delta).
        assert result.attribution.sum() == pytest.approx(result.log_odds_gap + result.convergence_delta, abs=1e-2)
        assert result.relative_delta < 0.1
    else:
        assert result.convergence_delta is None


def test_integrated_gradients_chooses_steps_to_converge_within_the_bound(classifier: Predictor,
                                                                       masked_face: Image.Image) -> None:
    """Automatic steps (the default): the convergence error is under IG_TOLERANCE of the change explained, or the
    explanation says it is not; too few steps chosen by hand are flagged, never shown as fine."""
    result = explain(classifier, masked_face)
    assert result.tolerance == IG_TOLERANCE and result.settings["auto_steps"]
    assert result.converged == (result.relative_delta <= IG_TOLERANCE)
    assert result.converged or result.seconds > IG_TIME_BUDGET_S / 3 or result.settings["steps"] * 2 > IG_MAX_STEPS
    coarse = explain(classifier, masked_face, steps=1)
    assert coarse.relative_delta > IG_TOLERANCE and coarse.converged is False


def test_more_steps_converge(classifier: Predictor, masked_face: Image.Image) -> None:
    coarse = explain(classifier, masked_face, steps=4)
    fine = explain(classifier, masked_face, steps=64)
    assert coarse.settings["steps"] == 4 and fine.settings["steps"] == 64
    assert abs(fine.convergence_delta) < abs(coarse.convergence_delta)
    assert fine.relative_delta < 0.02


def paste_on_background(face: Image.Image, kind: str, rng: np.random.Generator) -> tuple[Image.Image, tuple]:
    """The face at half the canvas side, off-centre, on a plain or pixel-noise background; (canvas, face box)."""
    side, canvas_side, x, y = 112, 224, 90, 24
    if kind == "plain":
        canvas = Image.new("RGB", (canvas_side, canvas_side), (96, 120, 140))
    else:
        canvas = Image.fromarray(rng.integers(0, 256, (canvas_side, canvas_side, 3), dtype=np.uint8))
    canvas.paste(face.resize((side, side), Image.Resampling.LANCZOS), (x, y))
    return canvas, (x / canvas_side, y / canvas_side, (x + side) / canvas_side, (y + side) / canvas_side)


@pytest.mark.parametrize("background", ["plain", "noise"])
def test_attributions_on_a_masked_face_concentrate_on_the_face(classifier: Predictor, held_out_faces,
                                                              background: str) -> None:
    rng = np.random.default_rng(0)
    shares = []
    for path in held_out_faces["with_mask"][:4]:
        canvas, (x0, y0, x1, y1) = paste_on_background(load_rgb(path), background, rng)
        result = explain(classifier, canvas, target="with_mask")
        magnitude = np.abs(result.attribution)
        h, w = magnitude.shape
        inside = magnitude[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)].sum()
        shares.append(inside / magnitude.sum())
    area_share = (x1 - x0) * (y1 - y0)  # 0.25
    assert min(shares) >= 2 * area_share, shares
    assert np.mean(shares) >= 2.4 * area_share, shares


def test_the_shared_classifier_is_never_modified(tiny_mobilenet, masked_face: Image.Image) -> None:
    classifier = load_classifier(str(tiny_mobilenet))
    before_state = {k: v.clone() for k, v in classifier.model.state_dict().items()}
    before = classifier.predict_proba([masked_face])
    for method in METHODS:
        explain(classifier, masked_face, method=method)
    assert not classifier.model.training
    assert not any(p.requires_grad for p in classifier.model.parameters())
    after_state = classifier.model.state_dict()
    assert all(torch.equal(before_state[k], after_state[k]) for k in before_state)
    np.testing.assert_array_equal(classifier.predict_proba([masked_face]), before)
    # The explainer's private copy (BatchNorm folded into the convolutions) computes the same function.
    explainer = explainer_for(classifier)
    assert explainer is explainer_for(classifier) and explainer.network is not classifier.model
    inputs = classifier.input.to_tensor([masked_face])
    with torch.no_grad():
        copy_probabilities = torch.softmax(explainer.network(inputs), dim=1).numpy()
    np.testing.assert_allclose(copy_probabilities, classifier.run(inputs, bf16=False), atol=1e-4)


def test_other_baselines_and_explicit_target(classifier: Predictor, masked_face: Image.Image) -> None:
    for baseline in BASELINES:
        result = explain(classifier, masked_face, baseline=baseline, steps=16)
        assert result.settings["baseline"] == baseline and np.isfinite(result.attribution).all()
    against = explain(classifier, masked_face, target="without_mask", steps=16)
    assert against.label == "without_mask" and against.probability < 0.5


def test_bad_arguments_are_refused(classifier: Predictor, masked_face: Image.Image) -> None:
    with pytest.raises(ValueError, match="unknown explanation method"):
        explain(classifier, masked_face, method="lime")
    with pytest.raises(ValueError, match="unknown baseline"):
        explain(classifier, masked_face, baseline="white")
    with pytest.raises(ValueError, match="unknown class"):
        explain(classifier, masked_face, target="maybe")
    with pytest.raises(ValueError, match="steps"):
        explain(classifier, masked_face, steps=0)


def test_gradcam_needs_a_convolutional_model(tiny_models_dir, masked_face: Image.Image) -> None:
    mlp = load_classifier(str(tiny_models_dir / "tiny-mlp"))
    with pytest.raises(ExplanationUnsupported, match="Grad-CAM"):
        explain(mlp, masked_face, method="gradcam")
    grey = explain(mlp, masked_face)  # IG works on the grayscale MLP; maps are shown in RGB
    assert grey.attribution.shape == (mlp.input.size,) * 2 and grey.overlay.shape == (mlp.input.size,) * 2 + (3,)

    cnn = load_classifier(str(tiny_models_dir / "tiny-cnn"))
    assert explain(cnn, masked_face, method="gradcam").attribution.shape == (cnn.input.size,) * 2


def test_gradcam_of_an_efficientnet_lite0_weighs_its_last_feature_map(tiny_efficientnet_lite0,
                                                                     masked_face: Image.Image) -> None:
    """timm's blocks are not Sequentials: Grad-CAM still finds the network's last spatial map (the 1280 channels
    after the head convolution's activation), not an earlier one, and maps the predicted class."""
    classifier = load_classifier(str(tiny_efficientnet_lite0))
    explanation = explain(classifier, masked_face, method="gradcam")
    explainer = explainer_for(classifier)
    head_unit = explainer.network.backbone[-3]  # the 1x1 convolution to 1280 channels and its normalisation
    assert explainer.feature_layers() == [head_unit[1].act]
    assert explanation.attribution.shape == (classifier.input.size,) * 2
    assert np.abs(explanation.attribution).max() > 0


def test_integrated_gradients_runs_every_forward_pass_under_the_explainers_lock(classifier: Predictor,
                                                                              masked_face: Image.Image) -> None:
    """Issue 18, defect 6: the log-odds gap (two forward passes) ran after the lock was released, where another
    session's Grad-CAM hooks on the same network copy could fire. Every pass of an IG explanation now holds it."""
    explainer = explainer_for(classifier)
    held: list[bool] = []
    handle = explainer.network.register_forward_hook(lambda *_: held.append(explainer._lock.locked()))
    try:
        result = explainer.explain(masked_face, method="integrated_gradients", steps=4)
    finally:
        handle.remove()
    assert result.log_odds_gap is not None and len(held) >= 3  # the prediction, the path, the two gap passes
    assert all(held), f"{held.count(False)} of {len(held)} forward passes ran outside the explainer's lock"

"""Why did the classifier say "mask" or "no mask"? Pixel attributions for one face crop, with captum.

:func:`explain` turns a face crop into an :class:`Explanation`: a signed ``HxW`` attribution map
at the model's input resolution, a colour heatmap of its magnitude, an overlay on the crop, and
(for Integrated Gradients) the convergence delta. Methods are looked up by name in
:data:`METHODS`:

- ``integrated_gradients`` (default): IG from a baseline to the input, target = the class
  explained (the predicted one unless told otherwise). Satisfies completeness: the attributions
  add up to ``F(input) - F(baseline)``; the convergence delta is how far the ``n_steps``
  integral approximation is from that.
- ``smoothgrad``: SmoothGrad (captum ``NoiseTunnel`` over ``Saliency``): absolute gradients
  averaged over noisy copies of the input; one forward/backward per sample, so fast.
- ``occlusion``: slide a patch of the baseline over the crop and record how much the
  decision drops; model-agnostic, coarse (patch-sized blobs).
- ``gradcam``: captum ``LayerGradCam`` on the last convolutional feature map, upsampled;
  coarse but robust. A cascade runs two networks: each one's last map is weighed by the same class score and
  the two maps are summed. Not available for the ``mlp`` baseline, which has no feature map.

What is explained is the **log-odds** of the class, ``logit[c] - logit[other]``, not its
probability: a softmax output saturates (0.999 on the input and 0.99 on the baseline would
leave almost nothing to attribute), and the log-odds is what the decision actually thresholds.

Baseline (IG and occlusion): a **heavily blurred copy of the input** by default. The usual black
image is a poor reference for this task: many masks are black or dark, and IG gives zero
attribution to pixels that equal the baseline, so a black baseline is blind to exactly the
object that matters. A blurred copy keeps the overall colours and lighting and removes the
structure (mask edges, eyes, mouth, straps), so the attributions answer "which visible detail
made the decision" (Sturmfels, Lundberg & Lee, "Visualizing the Impact of Feature Attribution
Baselines", Distill 2020). ``"black"`` and ``"mean"`` (the normalisation mean, i.e. an all-zero
model input) are available for comparison.

Explanations run on a private fp32 copy of the classifier's network (the shared
:class:`maskdet.inference.predictor.Predictor` is never touched: no ``.train()``, no parameter change);
captum only needs gradients with respect to the input. In the copy, every eval-mode BatchNorm
that follows a convolution is folded into it (exactly the same function, ~25% faster
forward + backward on CPU), which is what keeps one IG within ~1 s.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from maskdet.inference.predictor import Predictor
from maskdet.runtime import fold_batchnorm
from maskdet.zoo.architectures import ComposedNetworks

logger = logging.getLogger(__name__)

DEFAULT_METHOD = "integrated_gradients"
DEFAULT_BASELINE = "blur"
DEFAULT_IG_STEPS = 32  # one IG on MobileNetV2 at 224 px in about 1 s on 2 CPU cores; |delta| is typically < 5%
IG_TOLERANCE = 0.05  # the convergence error an explanation may keep, as a share of the log-odds change it explains
IG_TIME_BUDGET_S = 6.0  # automatic steps double from DEFAULT_IG_STEPS while the next run fits in this budget
IG_MAX_STEPS = 512
IG_INTERNAL_BATCH = 16  # scaled inputs per forward/backward: bounds memory (~0.5 GB at 224 px) at full speed
DEFAULT_SMOOTHGRAD_SAMPLES = 16
SMOOTHGRAD_NOISE = 0.15  # noise std as a fraction of the input's value range (SmoothGrad paper: 10-20%)
OCCLUSION_WINDOW = 1 / 6  # patch side as a fraction of the input size
OCCLUSION_STRIDE = 1 / 12
OCCLUSION_BATCH = 16
BLUR_SIGMA = 1 / 12  # Gaussian sigma of the blurred baseline, as a fraction of the input size
DISPLAY_SMOOTHING = 1 / 112  # Gaussian sigma applied to the heatmap for display only (2 px at 224 px)
HEATMAP_PERCENTILE = 99.5  # the colour scale saturates here, so a few extreme pixels do not wash the map out
OVERLAY_ALPHA = 0.65
COLORMAP = cv2.COLORMAP_INFERNO
MIN_RELATIVE_GAP = 0.5  # log-odds; below this the face and the baseline score alike and a ratio means nothing


class ExplanationUnsupported(ValueError):
    """The method cannot explain this model (e.g. Grad-CAM on a network without convolutions)."""


@dataclass(frozen=True)
class Explanation:
    """One explained face crop; every image is at the model's input resolution."""

    method: str
    label: str  # the class explained
    probability: float  # the fp32 model's probability of ``label`` for this crop
    image: np.ndarray  # HxWx3 uint8: the crop as the model sees it
    attribution: np.ndarray  # HxW float32, signed; positive = evidence for ``label``
    heatmap: np.ndarray  # HxWx3 uint8: colour-mapped magnitude of ``attribution``
    overlay: np.ndarray  # HxWx3 uint8: ``heatmap`` blended over ``image`` where attribution is strong
    convergence_delta: float | None  # IG only: sum(attribution) - (F(input) - F(baseline)), in log-odds
    log_odds_gap: float | None  # IG only: F(input) - F(baseline), what the attributions must add up to
    seconds: float
    settings: dict = field(default_factory=dict)
    tolerance: float | None = None  # IG only: the bound on relative_delta it was asked to meet

    @property
    def converged(self) -> bool | None:
        """IG only: is the convergence error within ``tolerance``? With a log-odds change too small to divide
        by (face and baseline score alike), the error is compared with ``tolerance`` of MIN_RELATIVE_GAP."""
        if self.convergence_delta is None or self.tolerance is None:
            return None
        relative = self.relative_delta
        if relative is None:
            return abs(self.convergence_delta) <= self.tolerance * MIN_RELATIVE_GAP
        return relative <= self.tolerance

    @property
    def relative_delta(self) -> float | None:
        """|delta| as a fraction of the gap it approximates; None when not IG or the gap is too small to divide by."""
        if self.convergence_delta is None or self.log_odds_gap is None or abs(self.log_odds_gap) < MIN_RELATIVE_GAP:
            return None
        return abs(self.convergence_delta) / abs(self.log_odds_gap)


@dataclass(frozen=True)
class Method:
    """An attribution method: what the page shows and how to run it."""

    title: str
    description: str
    run: Callable[[Explainer, torch.Tensor, torch.Tensor, int, int], tuple[np.ndarray, float | None]]
    steps_label: str | None = None  # what ``steps`` means for this method; None = not adjustable
    default_steps: int | None = None
    uses_baseline: bool = False


class _LogOdds(nn.Module):
    """The log-odds of each class c, ``log p_c - log(1 - p_c)`` = ``logits[:, c] - logsumexp(other logits)``
    (two classes: ``logits[:, c] - logits[:, other]``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x).float()
        classes = logits.shape[1]
        others = logits.unsqueeze(1).expand(-1, classes, -1).masked_fill(
            torch.eye(classes, dtype=torch.bool, device=logits.device), float("-inf"))
        return logits - torch.logsumexp(others, dim=2)


def _blur_baseline(image: np.ndarray) -> np.ndarray:
    sigma = max(1.0, image.shape[0] * BLUR_SIGMA)
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    return blurred.reshape(image.shape)


BASELINES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray] | None]] = {
    "blur": ("Blurred copy of the face (keeps colours, removes detail)", _blur_baseline),
    "black": ("Black image", lambda image: np.zeros_like(image)),
    "mean": ("Data-set mean colour (an all-zero model input)", None),
}
"""Baseline name -> (description, uint8 HxWxC image -> uint8 baseline image; None = normalised zero)."""


def _last_feature_map(model: nn.Module, size: int, channels: int) -> nn.Module | None:
    """The last leaf module of ``model`` whose output is a spatial map (N, C, h, w) with h, w > 1; None if none."""
    found: list[nn.Module] = []

    def record(module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-1] > 1 and output.shape[-2] > 1:
            found.append(module)

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, size, size))
    finally:
        for handle in handles:
            handle.remove()
    return found[-1] if found else None


def _feature_maps(model: nn.Module, size: int, channels: int) -> list[nn.Module]:
    """The layers Grad-CAM weighs: the last spatial feature map of each network the model runs. One for a plain
    network; one per network of a composed one (:class:`ComposedNetworks`, a cascade's members), whose classes flow
    through either network or both, so that a class only one of them decides still gets its map. Empty when there
    is no spatial map."""
    composed = next((m for m in model.modules() if isinstance(m, ComposedNetworks)), None)
    networks = composed.networks() if composed is not None else [model]
    return [layer for network in networks if (layer := _last_feature_map(network, size, channels)) is not None]


class Explainer:
    """Attribution methods for one classifier, on a private fp32 copy of its network.

    NOTE: captum's layer methods attach hooks to the network while they run, so concurrent
    explanations on one copy would see each other's hooks; a lock runs them one at a time.
    Sessions sharing a classifier share its explainer (see :func:`explainer_for`).
    """

    def __init__(self, classifier: Predictor) -> None:
        self.input = classifier.input
        self.classes = classifier.classes
        self.arch = classifier.loaded.arch
        network = fold_batchnorm(copy.deepcopy(classifier.model).float().eval())
        for param in network.parameters():
            param.requires_grad_(False)
        self.network = network
        self.forward = _LogOdds(network).eval()
        self._lock = threading.Lock()
        self._feature_layers: list[nn.Module] | None = None

    def feature_layers(self) -> list[nn.Module]:
        """The layers Grad-CAM uses (found once, by tracing a forward pass; see :func:`_feature_maps`)."""
        if self._feature_layers is None:
            self._feature_layers = _feature_maps(self.network, self.input.size, self.input.channels)
        return self._feature_layers

    def supports(self, method: str) -> bool:
        return method != "gradcam" or bool(self.feature_layers())

    def prepare(self, crop: Image.Image, baseline: str) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """(uint8 model view HxWxC, normalised input (1,C,H,W), normalised baseline (1,C,H,W))."""
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline {baseline!r}; choose one of: {', '.join(BASELINES)}")
        view = self.input.to_uint8(crop)
        inputs = self._normalise(view)
        make = BASELINES[baseline][1]
        reference = torch.zeros_like(inputs) if make is None else self._normalise(make(view))
        return view, inputs, reference

    def _normalise(self, view: np.ndarray) -> torch.Tensor:
        return self.input.normalize(torch.from_numpy(view.copy()).permute(2, 0, 1).unsqueeze(0))

    def explain(
        self,
        crop: Image.Image,
        method: str = DEFAULT_METHOD,
        target: str | int | None = None,
        steps: int | None = None,
        baseline: str = DEFAULT_BASELINE,
    ) -> Explanation:
        """Attribute the decision for ``target`` (a class name or index; default: the predicted class).

        Integrated Gradients with ``steps=None`` chooses its steps: from DEFAULT_IG_STEPS, doubled until the
        convergence error is within IG_TOLERANCE of the change explained, or until the next run would leave
        IG_TIME_BUDGET_S (then :attr:`Explanation.converged` is False and pages say the map is unreliable).
        """
        spec = get_method(method)
        if method == "integrated_gradients" and steps is None:
            return self._converged_ig(crop, target, baseline)
        if method == "gradcam" and not self.supports(method):
            raise ExplanationUnsupported(
                f"Grad-CAM needs a convolutional feature map, which the {self.arch} model does not have "
                "(use Integrated Gradients, SmoothGrad or Occlusion)"
            )
        steps = spec.default_steps if steps is None else int(steps)
        if steps is not None and steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        view, inputs, reference = self.prepare(crop.convert("RGB"), baseline)
        start = time.perf_counter()
        with self._lock, torch.enable_grad():
            with torch.no_grad():
                probabilities = torch.softmax(self.network(inputs).float(), dim=1)[0]
            index = int(probabilities.argmax()) if target is None else _class_index(target, self.classes)
            attribution, delta = spec.run(self, inputs, reference, index, steps or 0)
            gap = None
            if method == "integrated_gradients":  # under the lock too: another thread's Grad-CAM hooks fire on any pass
                with torch.no_grad():
                    gap = float(self.forward(inputs)[0, index] - self.forward(reference)[0, index])
        seconds = time.perf_counter() - start
        image = view if view.shape[2] == 3 else np.repeat(view, 3, axis=2)
        heatmap, weight = render_heatmap(attribution)
        settings = {"steps": steps} if spec.steps_label else {}
        if spec.uses_baseline:
            settings["baseline"] = baseline
        logger.debug("%s for %s in %.2f s (delta %s)", method, self.classes[index], seconds, delta)
        return Explanation(
            method=method, label=self.classes[index], probability=float(probabilities[index]), image=image,
            attribution=attribution.astype(np.float32), heatmap=heatmap, overlay=blend(image, heatmap, weight),
            convergence_delta=delta, log_odds_gap=gap, seconds=seconds, settings=settings,
            tolerance=IG_TOLERANCE if method == "integrated_gradients" else None,
        )

    def _converged_ig(self, crop: Image.Image, target: str | int | None, baseline: str) -> Explanation:
        """Integrated Gradients with steps doubled until converged or out of time (see :meth:`explain`)."""
        steps, spent = DEFAULT_IG_STEPS, 0.0
        while True:
            result = self.explain(crop, "integrated_gradients", target, steps, baseline)
            spent += result.seconds
            next_run = result.seconds * 2  # twice the steps, about twice the time
            if result.converged or steps * 2 > IG_MAX_STEPS or spent + next_run > IG_TIME_BUDGET_S:
                break
            steps *= 2
        if not result.converged:
            logger.info("IG did not converge: %.1f%% error with %d steps in %.1f s",
                        100 * (result.relative_delta or 0), steps, spent)
        return replace(result, seconds=spent, settings={**result.settings, "auto_steps": True})


def _class_index(target: str | int, classes: tuple[str, ...]) -> int:
    if isinstance(target, str):
        if target not in classes:
            raise ValueError(f"unknown class {target!r}; choose one of: {', '.join(classes)}")
        return classes.index(target)
    if not 0 <= int(target) < len(classes):
        raise ValueError(f"class index must be 0..{len(classes) - 1}, got {target}")
    return int(target)


def _integrated_gradients(
    explainer: Explainer, inputs: torch.Tensor, baseline: torch.Tensor, target: int, steps: int
) -> tuple[np.ndarray, float | None]:
    from captum.attr import IntegratedGradients

    attributions, delta = IntegratedGradients(explainer.forward).attribute(
        inputs, baselines=baseline, target=target, n_steps=steps,
        internal_batch_size=IG_INTERNAL_BATCH, return_convergence_delta=True,
    )
    return attributions[0].sum(0).detach().numpy(), float(delta[0])


def _smoothgrad(
    explainer: Explainer, inputs: torch.Tensor, _baseline: torch.Tensor, target: int, steps: int
) -> tuple[np.ndarray, float | None]:
    from captum.attr import NoiseTunnel, Saliency

    noise = SMOOTHGRAD_NOISE * float(inputs.max() - inputs.min())
    attributions = NoiseTunnel(Saliency(explainer.forward)).attribute(
        inputs, nt_type="smoothgrad", nt_samples=steps, nt_samples_batch_size=IG_INTERNAL_BATCH,
        stdevs=noise, target=target, abs=True,
    )
    return attributions[0].sum(0).detach().numpy(), None


def _occlusion(
    explainer: Explainer, inputs: torch.Tensor, baseline: torch.Tensor, target: int, _steps: int
) -> tuple[np.ndarray, float | None]:
    from captum.attr import Occlusion

    size = inputs.shape[-1]
    window = max(2, round(size * OCCLUSION_WINDOW))
    stride = max(1, round(size * OCCLUSION_STRIDE))
    channels = inputs.shape[1]
    with torch.no_grad():
        attributions = Occlusion(explainer.forward).attribute(
            inputs, sliding_window_shapes=(channels, window, window), strides=(channels, stride, stride),
            baselines=baseline, target=target, perturbations_per_eval=OCCLUSION_BATCH,
        )
    return attributions[0].mean(0).numpy(), None  # every channel holds the same value


def _gradcam(
    explainer: Explainer, inputs: torch.Tensor, _baseline: torch.Tensor, target: int, _steps: int
) -> tuple[np.ndarray, float | None]:
    from captum.attr import LayerAttribution, LayerGradCam

    heatmap = torch.zeros(tuple(inputs.shape[-2:]))
    for layer in explainer.feature_layers():  # a cascade: each member's map, weighed by the same class score, summed
        cam = LayerGradCam(explainer.forward, layer).attribute(inputs, target=target, relu_attributions=True)
        heatmap += LayerAttribution.interpolate(cam.detach(), tuple(inputs.shape[-2:]), interpolate_mode="bilinear")[0, 0]
    return heatmap.numpy(), None


METHODS: dict[str, Method] = {
    "integrated_gradients": Method(
        title="Integrated Gradients",
        description="Gradients integrated along a straight path from the baseline to the face; the attributions "
        "add up to the change in log-odds (the convergence delta is the approximation error).",
        run=_integrated_gradients, steps_label="Integration steps", default_steps=DEFAULT_IG_STEPS,
        uses_baseline=True,
    ),
    "smoothgrad": Method(
        title="SmoothGrad",
        description="Absolute input gradients averaged over noisy copies of the face (NoiseTunnel over Saliency): "
        "sharper than raw gradients, fast.",
        run=_smoothgrad, steps_label="Noise samples", default_steps=DEFAULT_SMOOTHGRAD_SAMPLES,
    ),
    "occlusion": Method(
        title="Occlusion",
        description="Covers the face patch by patch with the baseline and records how much the decision drops; "
        "model-agnostic and coarse.",
        run=_occlusion, uses_baseline=True,
    ),
    "gradcam": Method(
        title="Grad-CAM",
        description="Gradient-weighted activations of the last convolutional feature map, upsampled: coarse regions "
        "the network looked at. Not available for the MLP.",
        run=_gradcam,
    ),
}
"""Method name -> :class:`Method`; ``integrated_gradients`` is the default."""


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown explanation method {name!r}; choose one of: {', '.join(METHODS)}") from None


def render_heatmap(attribution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(HxWx3 uint8 colour map of |attribution|, HxW weights in 0..1) for display.

    The magnitude is smoothed a little (display only) and scaled so that the
    :data:`HEATMAP_PERCENTILE` percentile is full intensity.
    """
    magnitude = np.abs(np.nan_to_num(attribution.astype(np.float32)))
    sigma = magnitude.shape[0] * DISPLAY_SMOOTHING
    if sigma >= 0.5:
        magnitude = cv2.GaussianBlur(magnitude, (0, 0), sigmaX=sigma)
    scale = float(np.percentile(magnitude, HEATMAP_PERCENTILE))
    weight = np.clip(magnitude / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(magnitude)
    bgr = cv2.applyColorMap(np.round(weight * 255).astype(np.uint8), COLORMAP)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), weight


def blend(image: np.ndarray, heatmap: np.ndarray, weight: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The heatmap over the image, opaque where attribution is strong and transparent where it is weak."""
    mix = (alpha * weight)[..., None]
    return np.round(image * (1 - mix) + heatmap * mix).astype(np.uint8)


_EXPLAINERS: weakref.WeakKeyDictionary[Predictor, Explainer] = weakref.WeakKeyDictionary()
_EXPLAINERS_LOCK = threading.Lock()


def explainer_for(classifier: Predictor) -> Explainer:
    """The explainer of ``classifier``, built once and kept as long as the classifier lives."""
    with _EXPLAINERS_LOCK:
        explainer = _EXPLAINERS.get(classifier)
        if explainer is None:
            explainer = _EXPLAINERS[classifier] = Explainer(classifier)
        return explainer


def explain(
    classifier: Predictor,
    crop: Image.Image,
    method: str = DEFAULT_METHOD,
    target: str | int | None = None,
    steps: int | None = None,
    baseline: str = DEFAULT_BASELINE,
) -> Explanation:
    """Explain ``classifier``'s decision on one face crop; see :meth:`Explainer.explain`."""
    return explainer_for(classifier).explain(crop, method=method, target=target, steps=steps, baseline=baseline)

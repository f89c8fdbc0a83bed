"""One training engine for every architecture.

The run is a sequence of small verb-named steps (``prepare_data``, ``extract_features``,
``train_one_epoch``, ``evaluate``, ``fit``), in the spirit of torchvision's reference
``train.py``. Two modes:

- **cached features**: the frozen part of the network (the whole backbone, or all but the last
  fine-tuned blocks) runs once per image (plus augmented views of the training images) and only
  the rest trains; minutes become seconds on a 2-core CPU;
- **end to end**: everything that is trainable sees augmented images every epoch.

Images reach the network through a torch ``Dataset`` and ``DataLoader``: each item is decoded,
resized and augmented when its batch is drawn (in loader worker processes for larger sets), so
memory holds a few batches, never a whole augmented epoch. Every random draw of a run comes
from generators seeded by ``config.seed`` (the order and per-item augmentation seeds from a
local ``torch.Generator``; initialisation and dropout inside a forked global state that is
restored afterwards): the same run with any number of workers, and the caller's global
generators are left as they were.

Progress is reported to a callback as :class:`TrainProgress` snapshots; a
:class:`CancelToken` stops the run between batches and nothing is written.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import v2

from maskdet.data.augment import camera_corruptions
from maskdet.evaluation.calibration import expected_calibration_error, fit_temperature, fold_temperature
from maskdet.training.crops import MANIFEST_FORMAT as CROP_SET_FORMAT, crop_provenance
from maskdet.zoo.decision import predicted_labels
from maskdet.zoo.folders import load_model, read_metadata, save_model, stored_scores, validate_model_name
from maskdet.zoo.probe import check_precision, select_probe_crops
from maskdet.data.fingerprints import seen_files
from maskdet.data.datasets import DatasetError, ProgressFn, build_catalog, read_manifest, scan_dataset
from maskdet.data.images import ImageDecodeError, load_rgb
from maskdet.evaluation.metrics import compute_metrics
from maskdet.runtime import autocast, configure_threads, pick_device
from maskdet.settings import portable_path
from maskdet.data.split import Split, make_split
from maskdet.store import artifact_key, artifact_path, atomic_write
from maskdet.zoo.architectures import BuildOptions, InputConfig, MaskClassifier, ModelSpec, count_parameters, get_spec

logger = logging.getLogger(__name__)

EXTRACT_BATCH = 64
EVAL_BATCH = 128
FEATURE_CACHE_VERSION = 2  # 2: per-item augmentation seeds (the DataLoader path)
LOADER_WORKERS_MIN_ITEMS = 512  # smaller splits decode faster than loader worker processes start
SEED_RANGE = 2**62
MANIFEST_PROVENANCE = ("sources", "command", "settings", "counts", "synthetic")  # copied into the model card
CARD_LEAVES_OUT = ("crop_origins",)  # per-crop records of a source: the held-out ones go to crops.json instead


class TrainingCancelled(Exception):
    """The run was cancelled; nothing was saved."""


class CancelToken:
    """Thread-safe cancellation flag checked by the engine between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise TrainingCancelled("training cancelled")


@dataclass
class TrainConfig:
    """Everything that defines a run; stored in the checkpoint metadata."""

    arch: str
    data: Path
    name: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    patience: int | None = None
    img_size: int | None = None
    seed: int = 0
    augment: bool = True
    robust: bool = False  # add camera corruptions (maskdet.data.augment) to the augmentation
    calibrate: bool = True  # fit a temperature on the validation split and fold it into the output layer
    feature_views: int = 2  # training views per image in cached-features mode (1 clean + augmented)
    finetune_blocks: int = 0
    pretrained: bool = True
    weights_path: Path | None = None
    device: str | None = None
    workers: int | None = None
    limit_per_class: int | None = None  # cap on images per class (quick experiments, tests)
    init_from: Path | None = None  # a trained model (same arch and input) whose weights start the run
    class_weighted: bool = False  # weigh the loss by inverse class frequency in the train split (rare classes)
    command: str | None = None  # the command line that started the run, recorded in the model card

    def resolved(self) -> TrainConfig:
        """Fill unset hyper-parameters from the architecture's defaults."""
        defaults = get_spec(self.arch).defaults
        return replace(
            self,
            data=Path(self.data),
            epochs=self.epochs if self.epochs is not None else defaults.epochs,
            batch_size=self.batch_size or defaults.batch_size,
            lr=self.lr or defaults.lr,
            weight_decay=self.weight_decay if self.weight_decay is not None else defaults.weight_decay,
            patience=self.patience if self.patience is not None else defaults.patience,
            name=self.name or f"{self.arch}-{dt.datetime.now():%Y%m%d-%H%M%S}",
        )

    def to_json(self) -> dict:
        payload = asdict(self)
        payload["data"] = str(self.data)
        payload["weights_path"] = str(self.weights_path) if self.weights_path else None
        payload["init_from"] = str(self.init_from) if self.init_from else None
        return payload

    @classmethod
    def from_json(cls, payload: dict) -> TrainConfig:
        """Inverse of :meth:`to_json` (unknown keys are ignored: a job's params may carry more)."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in payload.items() if key in known}
        values["data"] = Path(values["data"])
        values["weights_path"] = Path(values["weights_path"]) if values.get("weights_path") else None
        values["init_from"] = Path(values["init_from"]) if values.get("init_from") else None
        return cls(**values)


@dataclass
class TrainProgress:
    """A snapshot of a run, sent to the progress callback (and shown by the dashboard)."""

    phase: str = "starting"  # catalog | load | extract | train | evaluate | save | done
    message: str = ""
    mode: str = ""
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    fraction: float = 0.0  # of the whole run, 0..1
    elapsed: float = 0.0
    eta: float | None = None
    train_loss: float | None = None
    train_acc: float | None = None
    val_loss: float | None = None
    val_acc: float | None = None
    history: list[dict] = field(default_factory=list)


ProgressCallback = Callable[[TrainProgress], None]


@dataclass
class TrainResult:
    name: str
    path: Path
    metadata: dict
    model: MaskClassifier


class _Reporter:
    """Turns step-local progress into whole-run fraction, elapsed time and ETA."""

    # Share of wall time each phase usually takes, by mode; used to map step progress to overall progress.
    WEIGHTS = {
        "cached-features": {"catalog": 0.03, "extract": 0.82, "train": 0.12, "evaluate": 0.02, "save": 0.01},
        "end-to-end": {"catalog": 0.03, "extract": 0.0, "train": 0.93, "evaluate": 0.03, "save": 0.01},
    }
    ORDER = ("catalog", "extract", "train", "evaluate", "save")

    def __init__(self, callback: ProgressCallback | None, cancel: CancelToken | None) -> None:
        self.callback = callback
        self.cancel = cancel
        self.state = TrainProgress()
        self.mode = "end-to-end"
        self.started = time.monotonic()
        self._last_sent = 0.0

    def update(self, phase: str, done: float, total: float, force: bool = False, **fields: object) -> None:
        if self.cancel:
            self.cancel.raise_if_cancelled()
        weights = self.WEIGHTS[self.mode]
        before = sum(weights[p] for p in self.ORDER[: self.ORDER.index(phase)])
        step = min(max(done / total, 0.0), 1.0) if total else 1.0
        fraction = min(before + weights[phase] * step, 1.0)
        elapsed = time.monotonic() - self.started
        state = self.state
        state.phase, state.mode, state.fraction, state.elapsed = phase, self.mode, fraction, elapsed
        state.eta = elapsed / fraction * (1 - fraction) if fraction > 0.02 else None
        for key, value in fields.items():
            setattr(state, key, value)
        now = time.monotonic()
        if self.callback and (force or now - self._last_sent >= 0.1 or step >= 1.0):
            self._last_sent = now
            self.callback(copy.deepcopy(state))

    def catalog_progress(self) -> ProgressFn:
        return lambda done, total: self.update("catalog", done, total, message=f"Reading images {done}/{total}")


@contextlib.contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Torch's global generator seeded with ``seed`` inside, restored to the caller's state after.

    For what draws from the global generator and takes no ``generator=`` (layer initialisation,
    dropout, torchvision's random transforms). A job runs in its own process, so no other thread
    shares this generator meanwhile.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_augmentation(config: InputConfig, robust: bool = False) -> v2.Transform:
    """Label-preserving variation resembling detector crops and webcam frames; ``robust`` adds what
    cameras do (low light, blur, noise, JPEG, low resolution, colour casts: :mod:`maskdet.data.augment`)."""
    colour = config.channels == 3
    return v2.Compose([
        v2.RandomResizedCrop(config.size, scale=(0.7, 1.0), ratio=(0.85, 1.18), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.RandomRotation(12)], p=0.5),
        v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.25 if colour else 0, hue=0.03 if colour else 0),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.2),
        *([camera_corruptions()] if robust else []),
    ])


def decode_item(path: Path, config: InputConfig) -> torch.Tensor:
    """One image as the model's uint8 (C, S, S) input, before augmentation and normalisation."""
    try:
        array = config.to_uint8(load_rgb(path, draft_size=config.size * 2))
    except ImageDecodeError as exc:  # changed on disk since the catalogue was built
        raise DatasetError(f"{path}: {exc.reason}") from exc
    return torch.tensor(array).permute(2, 0, 1).contiguous()  # a copy: PIL's array is read-only


class ImageItems(Dataset):
    """One split's images, decoded, resized and (for training) augmented one item at a time, on demand.

    Keys are ``(index, seed)`` pairs from :class:`SeededOrder`: an item's augmentation draws from
    torch's generator seeded with its own seed (inside :func:`seeded_torch`), so it is the same in
    the main process and in any loader worker.
    """

    def __init__(self, root: Path, relpaths: list[str], labels: list[int], config: InputConfig,
                 augmentation: v2.Transform | None = None) -> None:
        self.root, self.relpaths, self.labels = root, relpaths, labels
        self.config, self.augmentation = config, augmentation

    def __len__(self) -> int:
        return len(self.relpaths)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        image = decode_item(self.root / self.relpaths[index], self.config)
        if self.augmentation is not None:
            with seeded_torch(seed):
                image = self.augmentation(image)
        return image, self.labels[index]


class SeededOrder(Sampler):
    """``(index, augmentation seed)`` for every item; shuffled, and seeded, from ``generator`` (None: in order)."""

    def __init__(self, size: int, generator: torch.Generator | None = None) -> None:
        self.size, self.generator = size, generator

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.generator is None:
            return iter((index, 0) for index in range(self.size))
        order = torch.randperm(self.size, generator=self.generator).tolist()
        seeds = torch.randint(0, SEED_RANGE, (self.size,), generator=self.generator).tolist()
        return iter(zip(order, seeds, strict=True))


def make_loader(items: ImageItems, batch_size: int, generator: torch.Generator | None, workers: int) -> DataLoader:
    """Lazy uint8 batches of ``items``; worker processes only where the split is large enough to pay for them."""
    workers = workers if len(items) >= LOADER_WORKERS_MIN_ITEMS else 0
    return DataLoader(
        items, batch_size=batch_size, sampler=SeededOrder(len(items), generator), num_workers=workers,
        persistent_workers=workers > 0, multiprocessing_context="fork" if workers else None,
    )


class NormalizedBatches:
    """A loader's uint8 batches as normalised model inputs on ``device`` (sized: progress needs the count)."""

    def __init__(self, loader: DataLoader, config: InputConfig, device: torch.device) -> None:
        self.loader, self.config, self.device = loader, config, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in self.loader:
            yield self.config.normalize(images.to(self.device)), labels.to(self.device)


@torch.inference_mode()
def extract_features(
    backbone: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    config: InputConfig,
    device: torch.device,
    report: Callable[[int], None],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(backbone outputs as float32, labels) for uint8 image batches; ``report(images done)`` after each batch."""
    backbone.eval()
    chunks, labels, done = [], [], 0
    for images, batch_labels in batches:
        inputs = config.normalize(images.to(device)).contiguous(memory_format=torch.channels_last)
        with autocast(device):
            chunks.append(backbone(inputs).float().cpu())
        labels.append(batch_labels)
        done += len(images)
        report(done)
    if not chunks:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(chunks), torch.cat(labels)


class SizedBatches(Protocol):
    """What the training and evaluation loops take: (inputs, labels) batches with a known count."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def train_one_epoch(
    model: nn.Module,
    batches: SizedBatches | Callable[[], SizedBatches],
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    on_batch: Callable[[int, int, float, float], None],
) -> tuple[float, float]:
    """One pass over ``batches`` of (inputs, labels); returns (mean loss, accuracy)."""
    model.train()
    items = batches() if callable(batches) else batches
    total_loss, correct, seen = 0.0, 0, 0
    for index, (inputs, labels) in enumerate(items, start=1):
        optimizer.zero_grad(set_to_none=True)
        logits = model(inputs)
        loss = loss_fn(logits, labels)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        on_batch(index, len(items), total_loss / seen, correct / seen)
    return total_loss / max(seen, 1), correct / max(seen, 1)


@torch.inference_mode()
def evaluate(
    model: nn.Module, batches: SizedBatches, loss_fn: nn.Module
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(mean loss, accuracy at threshold 0.5, labels, class probabilities (N, C)) over ``batches``."""
    model.eval()
    total_loss, labels_all, scores_all = 0.0, [], []
    for inputs, labels in batches:
        logits = model(inputs).float()
        total_loss += float(loss_fn(logits, labels.to(logits.device))) * len(labels)
        labels_all.append(labels.cpu().numpy())
        scores_all.append(torch.softmax(logits, 1).cpu().numpy())
    labels_np = np.concatenate(labels_all) if labels_all else np.zeros(0, dtype=np.int64)
    probabilities = np.concatenate(scores_all) if scores_all else np.zeros((0, 2))
    accuracy = float((predicted_labels(probabilities) == labels_np).mean()) if len(labels_np) else float("nan")
    return total_loss / max(len(labels_np), 1), accuracy, labels_np, probabilities


def _batches(inputs: torch.Tensor, labels: torch.Tensor, size: int, shuffle: bool, generator: torch.Generator | None = None):
    order = torch.randperm(len(labels), generator=generator) if shuffle else torch.arange(len(labels))
    return [(inputs[order[i : i + size]], labels[order[i : i + size]]) for i in range(0, len(labels), size)]


def _limit_split(split: Split, per_class: int | None, seed: int) -> Split:
    if not per_class:
        return split
    rng = random.Random(seed)
    limited = {}
    for name, fraction in zip(("train", "val", "test"), split.fractions, strict=True):
        paths = list(getattr(split, name))
        rng.shuffle(paths)
        keep, counts = [], dict.fromkeys(range(len(split.classes)), 0)
        cap = max(1, round(per_class * fraction / max(split.fractions)))
        for path in paths:
            label = split.labels[path]
            if counts[label] < cap:
                keep.append(path)
                counts[label] += 1
        limited[name] = sorted(keep)
    return replace(split, **limited)


def class_weights(split: Split, num_classes: int) -> torch.Tensor:
    """Inverse-frequency loss weights of the train split's classes, mean 1 over the classes present: a class
    with 87 faces beside two with 1,000 counts as much in the loss as they do (absent classes weigh 0)."""
    counts = np.bincount([split.labels[p] for p in split.train], minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
    return torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32)


def _feature_cache_path(config: TrainConfig, spec: ModelSpec, input_cfg: InputConfig, split: Split, fingerprint: str) -> Path:
    key = artifact_key(
        "features", FEATURE_CACHE_VERSION, arch=spec.name, input=input_cfg.to_json(), data=fingerprint,
        split=split.to_json(), views=config.feature_views if config.augment else 1, seed=config.seed,
        finetune_blocks=config.finetune_blocks,
        weights=spec.pretrained.sha256 if (spec.pretrained and config.pretrained) else "random",
        init_from=read_metadata(config.init_from)["weights"]["sha256"] if config.init_from else None,
        augmentation=repr(build_augmentation(input_cfg, robust=config.robust)) if config.augment else None,
    )
    return artifact_path("features", key, ".pt")


def prepare_model(spec: ModelSpec, config: TrainConfig, num_classes: int = 2) -> MaskClassifier:
    """Build the network (``num_classes`` outputs); transfer-learning archs get their ImageNet weights or a clear
    error."""
    if spec.pretrained is not None and not config.pretrained:
        logger.warning("%s is trained from RANDOM weights (--no-pretrained): this is not transfer learning", spec.name)
    options = BuildOptions(
        pretrained=config.pretrained and spec.pretrained is not None,
        finetune_blocks=config.finetune_blocks,
        weights_path=config.weights_path,
        img_size=config.img_size,
        num_classes=num_classes,
    )
    model = spec.build(options)
    if config.init_from:
        _init_from(model, config.init_from, spec)
    return model


def _init_from(model: MaskClassifier, folder: Path, spec: ModelSpec) -> None:
    """Start ``model`` from a trained model's weights (e.g. a two-class model growing a third class): every
    tensor of the same shape is copied; an output layer with more classes keeps the trained classes' rows
    (the classes are a prefix of :data:`maskdet.settings.KNOWN_CLASSES`) and its new rows start at zero, so the
    new class begins improbable and the others' decisions start as they were."""
    loaded = load_model(folder)
    if loaded.arch != spec.name:
        raise ValueError(f"--init-from {folder} is a {loaded.arch}, not a {spec.name}")
    state = model.state_dict()
    with torch.no_grad():
        for key, value in loaded.model.state_dict().items():
            target = state.get(key)
            if target is None:
                raise ValueError(f"--init-from {folder}: {key} does not fit {spec.name} as built here")
            if target.shape == value.shape:
                target.copy_(value)
            elif target.ndim == value.ndim and target.shape[1:] == value.shape[1:] and target.shape[0] > value.shape[0]:
                target.zero_()
                target[: value.shape[0]].copy_(value)
            else:
                raise ValueError(f"--init-from {folder}: {key} has shape {list(value.shape)}, "
                                 f"{spec.name} here needs {list(target.shape)} (another input size?)")
    logger.info("weights initialised from %s", folder)


def loader_workers(config: TrainConfig) -> int:
    """DataLoader worker processes: ``config.workers``, else half the cores (decoding is cheap next to a step)."""
    return config.workers if config.workers is not None else max(1, min(4, (os.cpu_count() or 2) // 2))


def fit(config: TrainConfig, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> TrainResult:
    """Train, evaluate on the held-out test split and save ``models/<name>``; see the module docstring.

    Torch's global generator is seeded for the run and restored afterwards (:func:`seeded_torch`).
    """
    config = config.resolved()
    with seeded_torch(config.seed):
        return _fit(config, progress, cancel)


def _fit(config: TrainConfig, progress: ProgressCallback | None, cancel: CancelToken | None) -> TrainResult:
    validate_model_name(config.name)
    spec = get_spec(config.arch)
    if config.finetune_blocks and not spec.supports_finetune:
        raise ValueError(f"{spec.name} does not support fine-tuning blocks")
    if config.epochs < 1 or config.batch_size < 1 or config.lr <= 0:
        raise ValueError("epochs and batch size must be >= 1 and the learning rate > 0")
    reporter = _Reporter(progress, cancel)
    started = time.monotonic()
    device = pick_device(config.device)
    configure_threads()
    workers = loader_workers(config)

    # Build first (the scan reads no pixels): a missing pretrained file should fail before minutes of decoding.
    scan = scan_dataset(config.data)
    classes = scan.classes  # two, or three with an incorrect_mask folder: the card records them
    model = prepare_model(spec, config, len(classes)).to(device)
    frozen_prefix, trainable_rest = model.split_frozen_prefix()
    cached_mode = any(True for _ in frozen_prefix.parameters())
    reporter.mode = "cached-features" if cached_mode else "end-to-end"
    input_cfg = spec.input_config(config.img_size)

    catalog = build_catalog(scan, progress=reporter.catalog_progress())
    present = {r.label for r in catalog.readable}
    if len(present) < 2:
        only = ", ".join(classes[i] for i in present) or "none"
        raise DatasetError(f"{config.data}: training needs readable images of both classes; found only {only}")
    split = _limit_split(make_split(catalog, seed=config.seed), config.limit_per_class, config.seed)
    for name in ("train", "val"):
        if len({split.labels[p] for p in getattr(split, name)}) < 2:
            raise DatasetError(f"{config.data}: too few images to give the {name} split both classes")
    logger.info("training %s (%s) on %s: %s", config.name, reporter.mode, config.data, split.counts())

    augmentation = build_augmentation(input_cfg, robust=config.robust) if config.augment else None
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(split, len(classes)).to(device) if config.class_weighted else None)
    generator = torch.Generator().manual_seed(config.seed)

    def items(name: str, augmented: bool = False) -> ImageItems:
        relpaths = getattr(split, name)
        return ImageItems(scan.root, relpaths, [split.labels[p] for p in relpaths], input_cfg,
                          augmentation if augmented else None)

    if cached_mode:
        features, labels = _cached_features(config, spec, frozen_prefix, input_cfg, split, scan.fingerprint, items,
                                            generator, workers, device, reporter)
        features = {name: value.to(device) for name, value in features.items()}
        labels = {name: value.to(device) for name, value in labels.items()}
        train_inputs, train_labels = features["train"], labels["train"]
        trainable = trainable_rest
        train_batches = lambda: _batches(train_inputs, train_labels, config.batch_size, True, generator)  # noqa: E731
        val_batches = _batches(features["val"], labels["val"], 256, False)
        test_batches = _batches(features["test"], labels["test"], 256, False)
    else:
        trainable = model
        train_loader = make_loader(items("train", augmented=True), config.batch_size, generator, workers)
        train_batches = NormalizedBatches(train_loader, input_cfg, device)
        val_batches, test_batches = (
            NormalizedBatches(make_loader(items(name), EVAL_BATCH, None, workers), input_cfg, device)
            for name in ("val", "test")
        )

    # Dropout and shuffling draw from here on: the same run whether the features came from the cache
    # or were just extracted (extraction's augmentations consume random numbers).
    torch.manual_seed(config.seed)
    generator.manual_seed(config.seed)
    params = [p for p in trainable.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    history: list[dict] = []
    best_state, best_val, best_epoch, stale = None, math.inf, 0, 0
    epochs = config.epochs
    for epoch in range(1, epochs + 1):

        def on_batch(batch: int, batches: int, loss: float, acc: float, epoch: int = epoch) -> None:
            reporter.update(
                "train", (epoch - 1) + batch / batches, epochs, epoch=epoch, epochs=epochs, batch=batch,
                batches=batches, train_loss=loss, train_acc=acc,
                message=f"Epoch {epoch}/{epochs}, batch {batch}/{batches}",
            )

        train_loss, train_acc = train_one_epoch(trainable, train_batches, optimizer, loss_fn, on_batch)
        val_loss, val_acc, _, _ = evaluate(trainable, val_batches, loss_fn)
        history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc})
        improved = val_loss < best_val - 1e-4
        if improved:
            best_val, best_epoch, stale = val_loss, epoch, 0
            best_state = copy.deepcopy(trainable.state_dict())
        else:
            stale += 1
        reporter.update(
            "train", epoch, epochs, force=True, epoch=epoch, epochs=epochs, val_loss=val_loss, val_acc=val_acc,
            history=list(history), message=f"Epoch {epoch}/{epochs}: val loss {val_loss:.4f}, val acc {val_acc:.4f}",
        )
        if stale >= config.patience:
            logger.info("early stopping after epoch %d (best %d)", epoch, best_epoch)
            break
    if best_state is not None:
        trainable.load_state_dict(best_state)
    calibration = _calibrate(trainable, val_batches, loss_fn) if config.calibrate else None

    reporter.update("evaluate", 0, 1, message="Evaluating on the held-out test split")
    _, _, val_y, val_scores = evaluate(trainable, val_batches, loss_fn)
    _, _, test_y, test_scores = evaluate(trainable, test_batches, loss_fn)
    metrics = {"val": compute_metrics(val_y, val_scores), "test": compute_metrics(test_y, test_scores)}
    reporter.update("save", 0, 1, message="Saving the model")
    if cancel:
        cancel.raise_if_cancelled()
    total, trainable_count = count_parameters(model)
    metadata = {
        "arch": spec.name,
        "classes": list(classes),
        "command": config.command,
        "input": input_cfg.to_json(),
        "build": {"finetune_blocks": config.finetune_blocks, "pretrained": bool(config.pretrained and spec.pretrained)},
        "mode": reporter.mode,
        "dataset": {"path": portable_path(scan.root), "fingerprint": scan.fingerprint, "images": len(scan.samples),
                    "unreadable": len(catalog.unreadable),
                    **_manifest_record(read_manifest(scan.root))},
        "calibration": calibration,
        "split_counts": split.counts(),
        "hyperparameters": {**config.to_json(), "data": portable_path(config.data), "optimizer": "AdamW",
                            "best_epoch": best_epoch},
        "metrics": metrics,
        # Validation scores: the operating threshold is chosen on them (maskdet.zoo.folders.choose_operating_threshold).
        "evaluation": {"test": stored_scores(test_y, test_scores), "val": stored_scores(val_y, val_scores)},
        "history": history,
        "params": {"total": total, "trainable": trainable_count},
        "training_seconds": round(time.monotonic() - started, 1),
        "device": str(device),
    }
    model.cpu()
    probe = select_probe_crops(model, input_cfg, scan.root, split.val, [split.labels[p] for p in split.val])
    metadata["serving"] = check_precision(model, input_cfg, probe).to_json()
    seen = seen_files(catalog, [*split.train, *split.val])
    crops = (crop_provenance(scan.root, [*split.val, *split.test])
             if read_manifest(scan.root).get("format") == CROP_SET_FORMAT else None)
    path = save_model(model, metadata, config.name, split=split.to_json(), probe=probe, seen=seen, crops=crops)
    reporter.update("save", 1, 1, force=True, message=f"Saved {path}")
    reporter.state.phase = "done"
    return TrainResult(name=config.name, path=path, metadata=metadata, model=model.eval())


def _manifest_record(manifest: dict) -> dict:
    """What of a data set's manifest the model card keeps (:data:`MANIFEST_PROVENANCE`), per-crop records left out."""
    record = {k: v for k, v in manifest.items() if k in MANIFEST_PROVENANCE}
    if isinstance(record.get("sources"), list):  # a crop set's are records; a data set's own manifest may say more
        record["sources"] = [{k: v for k, v in source.items() if k not in CARD_LEAVES_OUT}
                             if isinstance(source, dict) else source for source in record["sources"]]
    return record


def _calibrate(trainable: nn.Module, val_batches: list, loss_fn: nn.Module) -> dict:
    """Temperature scaling on the validation split, folded into the output layer; before/after ECE."""
    _, _, labels, scores = evaluate(trainable, val_batches, loss_fn)
    temperature = fit_temperature(labels, scores)  # class probabilities: every class's logit divided alike
    fold_temperature(trainable, temperature)
    _, _, _, calibrated = evaluate(trainable, val_batches, loss_fn)
    logger.info("calibration: temperature %.3f, validation ECE %.4f -> %.4f", temperature,
                expected_calibration_error(labels, scores), expected_calibration_error(labels, calibrated))
    return {"method": "temperature scaling on the validation split", "temperature": temperature,
            "val_ece_before": expected_calibration_error(labels, scores),
            "val_ece_after": expected_calibration_error(labels, calibrated)}


def _cached_features(config, spec, frozen_prefix, input_cfg, split, fingerprint, items, generator, workers, device,
                     reporter) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(features, labels) of the frozen prefix's outputs for every split; training gets extra augmented views.

    Cached on disk (:mod:`maskdet.store`), keyed by the data's content, the split, the weights and the settings.
    """
    views = config.feature_views if config.augment else 1
    cache_path = _feature_cache_path(config, spec, input_cfg, split, fingerprint)
    if cache_path.is_file():
        try:
            cached = torch.load(cache_path, weights_only=True)
            reporter.update("extract", 1, 1, message="Using cached backbone features")
            return cached["features"], cached["labels"]
        except (OSError, RuntimeError, EOFError, KeyError, TypeError):
            logger.warning("ignoring unreadable feature cache %s", cache_path)
    passes = [("val", False), ("test", False), ("train", False)] + [("train", True)] * (views - 1)
    total = sum(len(getattr(split, name)) for name, _ in passes)
    done = 0
    features: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    labels: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    for name, augmented in passes:
        offset = done

        def report(d: int, offset: int = offset) -> None:
            reporter.update("extract", offset + d, total, message=f"Extracting backbone features ({offset + d}/{total} images)")

        loader = make_loader(items(name, augmented), EXTRACT_BATCH, generator if augmented else None, workers)
        outputs, pass_labels = extract_features(frozen_prefix, loader, input_cfg, device, report)
        features[name].append(outputs)
        labels[name].append(pass_labels)
        done += len(getattr(split, name))
    result = {
        "features": {name: torch.cat(chunks) for name, chunks in features.items()},
        "labels": {name: torch.cat(chunks) for name, chunks in labels.items()},
    }
    atomic_write(cache_path, lambda handle: torch.save(result, handle))
    return result["features"], result["labels"]

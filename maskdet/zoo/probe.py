"""The precision probe: real validation crops stored with a model, and the bf16 check run on them.

bf16 halves the memory traffic of inference on CPUs that run it natively, and moves probabilities a
little. How much depends on the model *and the faces*: smooth random noise (the old probe) said 0.00x
for the shipped MobileNetV2 while a real validation face moved by 0.12. So every model folder stores
:data:`PROBE_CROPS` of its own validation crops (``probe.safetensors``: uint8 (N, size, size, C) at the
model's input size, decoded as evaluation decodes them; safetensors, so loading runs no code), and
:func:`check_precision` accepts bf16 only when, on those crops, it flips no label and moves no
probability by ``BF16_MAX_PROB_DIFF * BF16_PROBE_MARGIN`` or more. Training stores the crops and writes
the result into the model card (``metadata["serving"]``); a loaded model re-checks on this CPU.

For a model saved without crops (the shipped ones before this change)::

    python -m maskdet.zoo.probe MODEL [MODEL ...] [--data DIR]

stores them from the model's saved split (``split.json`` val files of its training folder) and
updates its model card.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from maskdet.zoo.folders import (
    METADATA_FILE,
    PROBE_FILE,
    PROBE_FORMAT,
    CheckpointError,
    ModelFolder,
    load_model,
    load_split,
    read_probe,
    resolve_model,
)
from maskdet.data.images import ImageDecodeError, load_rgb
from maskdet.runtime import cpu_has_fast_bf16, inference_network
from maskdet.settings import classes_of_labels, data_root, recorded_path
from maskdet.store import write_json
from maskdet.zoo.architectures import InputConfig

logger = logging.getLogger(__name__)

BF16_MAX_PROB_DIFF = 0.05  # the promise (README): bf16 moves no probability by more than this, and no label
BF16_PROBE_MARGIN = 0.5
"""bf16 must stay below this fraction of :data:`BF16_MAX_PROB_DIFF` on the probe crops: 64 crops cannot
show the worst face of a test split, the margin keeps the promise for the faces they do not show."""
PROBE_CROPS = 64
"""Validation crops stored per model: half the ones the fp32 model is least sure of (where the softmax is
steepest, so a precision change shows most), half a class-balanced random draw of the rest."""
PROBE_SCORE_BATCH = 64
"""Validation crops decoded and scored at once while choosing the probe: memory holds one batch's activations,
not the whole split's (scoring it in one pass cost ~3.8 MB per validation image at 128 px, issue 18 defect 3)."""


@dataclass(frozen=True)
class PrecisionCheck:
    """What the bf16 probe measured and the precision it chose: the model card's ``serving`` entry."""

    precision: str  # "bf16" or "fp32": what the model is served in on a CPU like the one that measured
    bf16_max_prob_diff: float | None  # largest |P_bf16 - P_fp32| over the probe crops; None = not measured
    bf16_labels_agree: bool | None
    probe_crops: int
    native_bf16: bool  # the measuring CPU runs bf16 natively (elsewhere fp32 is served: bf16 would be slower)
    reason: str

    def to_json(self) -> dict:
        payload = asdict(self)
        if self.bf16_max_prob_diff is not None:
            payload["bf16_max_prob_diff"] = round(self.bf16_max_prob_diff, 5)
        payload["bf16_accepted_below"] = BF16_MAX_PROB_DIFF * BF16_PROBE_MARGIN
        return payload


def normalize_crops(config: InputConfig, crops: torch.Tensor) -> torch.Tensor:
    """uint8 crops (N, size, size, C), as stored, -> the model's normalised input (N, C, size, size)."""
    return config.normalize(crops.permute(0, 3, 1, 2))


@torch.inference_mode()
def _probabilities(model: nn.Module, config: InputConfig, crops: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    """What the eager backend gives on uint8 ``crops``, normalised and scored :data:`PROBE_SCORE_BATCH` at a time
    (memory holds one batch's inputs and activations, whatever the number of probe crops)."""
    network = inference_network(model, dtype)
    return np.concatenate([_network_probabilities(network, normalize_crops(config, batch), dtype)
                           for batch in crops.split(PROBE_SCORE_BATCH)])


@torch.inference_mode()
def _network_probabilities(network: nn.Module, inputs: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    logits = network(inputs.to(dtype=dtype, memory_format=torch.channels_last))
    return torch.softmax(logits.float(), dim=1).numpy()


def check_precision(model: nn.Module, config: InputConfig, crops: torch.Tensor | None,
                    native_bf16: bool | None = None) -> PrecisionCheck:
    """The serving precision of ``model`` from its probe ``crops`` (uint8 NHWC; None = none stored).

    bf16 is chosen when the CPU runs it natively (``native_bf16``, default: this CPU), every probe label
    agrees with fp32 and no probability moves by ``BF16_MAX_PROB_DIFF * BF16_PROBE_MARGIN`` or more.
    """
    native = cpu_has_fast_bf16() if native_bf16 is None else native_bf16
    if crops is None or len(crops) == 0:
        return PrecisionCheck("fp32", None, None, 0, native, "no stored validation crops to check bf16 on")
    reference = _probabilities(model, config, crops, torch.float32)
    reduced = _probabilities(model, config, crops, torch.bfloat16)
    diff = float(np.abs(reference - reduced).max())
    agree = bool((reference.argmax(1) == reduced.argmax(1)).all())
    limit = BF16_MAX_PROB_DIFF * BF16_PROBE_MARGIN
    faithful = agree and diff < limit
    if not agree:
        reason = "bf16 flips the label of a validation crop"
    elif not faithful:
        reason = f"bf16 moves a validation probability by {diff:.4f} (accepted below {limit})"
    elif not native:
        reason = "faithful, but this CPU has no native bf16 (it would be slower than fp32)"
    else:
        reason = f"bf16 moves no validation probability by {limit} or more and flips no label"
    return PrecisionCheck("bf16" if native and faithful else "fp32", diff, agree, len(crops), native, reason)


def select_probe_crops(model: nn.Module, config: InputConfig, root: Path, relpaths: list[str],
                       labels: list[int], count: int = PROBE_CROPS, seed: int = 0) -> torch.Tensor:
    """``count`` validation crops (uint8 NHWC at the input size), decoded as evaluation decodes them:
    half the ones the fp32 model is least sure of, half a class-balanced random draw of the rest.

    The split is scored :data:`PROBE_SCORE_BATCH` crops at a time and only the chosen crops are kept
    (decoded again), so memory does not grow with the validation split."""
    readable, margin = _score_margins(model, config, Path(root), relpaths)
    if not readable:
        raise ValueError(f"no readable validation image under {root} to store as precision probe")
    readable_labels = [labels[i] for i in readable]
    unsure = [int(i) for i in np.argsort(margin, kind="stable")[: count // 2]]
    rest = sorted(set(range(len(readable))) - set(unsure))
    rng = np.random.default_rng(seed)
    shuffled = [int(i) for i in rng.permutation(rest)]
    classes = classes_of_labels(readable_labels)
    quota = (count - len(unsure)) // len(classes)
    drawn = [i for label in range(len(classes)) for i in [j for j in shuffled if readable_labels[j] == label][:quota]]
    drawn += [i for i in shuffled if i not in drawn][: count - len(unsure) - len(drawn)]  # a class with too few
    chosen = [relpaths[readable[i]] for i in sorted(unsure + drawn)]
    return torch.from_numpy(np.stack([_decode_crop(config, Path(root) / relpath) for relpath in chosen]))


def _decode_crop(config: InputConfig, path: Path) -> np.ndarray:
    return config.to_uint8(load_rgb(path, draft_size=config.size * 2))


def _score_margins(model: nn.Module, config: InputConfig, root: Path,
                   relpaths: list[str]) -> tuple[list[int], np.ndarray]:
    """(indices of the readable ``relpaths``, their fp32 ``|P(with_mask) - 0.5|``), decoded and scored a batch
    at a time; unreadable files are logged and left out."""
    network = inference_network(model, torch.float32)
    readable: list[int] = []
    batch: list[np.ndarray] = []
    margins: list[np.ndarray] = []

    def score_batch() -> None:
        inputs = normalize_crops(config, torch.from_numpy(np.stack(batch)))
        margins.append(np.abs(_network_probabilities(network, inputs, torch.float32)[:, 1] - 0.5))
        batch.clear()

    for index, relpath in enumerate(relpaths):
        try:
            batch.append(_decode_crop(config, root / relpath))
        except ImageDecodeError as exc:
            logger.warning("probe: skipping %s (%s)", relpath, exc.reason)
            continue
        readable.append(index)
        if len(batch) == PROBE_SCORE_BATCH:
            score_batch()
    if batch:
        score_batch()
    return readable, np.concatenate(margins) if margins else np.zeros(0)


def load_probe(folder: Path | ModelFolder, config: InputConfig) -> torch.Tensor | None:
    """The probe crops stored in the model ``folder``, or None when it has none usable (logged).

    Read through the model folder's member checks (:func:`maskdet.zoo.folders.read_probe`): a link out of
    the folder, a device or a file above the size limit is refused unread."""
    path = (folder.path if isinstance(folder, ModelFolder) else Path(folder)) / PROBE_FILE
    try:
        crops = folder.probe() if isinstance(folder, ModelFolder) else read_probe(Path(folder))
    except CheckpointError as exc:
        logger.warning("ignoring the precision probe: %s", exc)
        return None
    if crops is None:
        return None
    expected = (config.size, config.size, config.channels)
    if crops.dtype != torch.uint8 or crops.dim() != 4 or tuple(crops.shape[1:]) != expected:
        logger.warning("%s: probe crops are %s %s, expected uint8 (N, %s)", path, crops.dtype, list(crops.shape),
                       ", ".join(map(str, expected)))
        return None
    return crops


def store_probe(model_ref: str | Path, data: Path | None = None) -> PrecisionCheck:
    """Store the probe crops of a saved model from its split's validation files and update its model card.

    ``data`` is the model's training folder (default: where its metadata says it trained, relative paths
    taken from the data-set root's parent, as the shipped models record ``../shared/datasets/NAME``).
    """
    from safetensors.torch import save_file

    folder = resolve_model(str(model_ref))
    loaded = load_model(folder)
    split = load_split(folder)
    if not split or not split.get("val"):
        raise ValueError(f"{folder} has no saved split with validation files to take probe crops from")
    recorded = recorded_path(str((loaded.metadata.get("dataset") or {}).get("path", "")))
    root = Path(data) if data else recorded if recorded.is_absolute() else data_root() / recorded.name
    crops = select_probe_crops(loaded.model, loaded.input, root, split["val"], [split["labels"][p] for p in split["val"]])
    save_file({"crops": crops}, str(folder / PROBE_FILE), metadata={"format": PROBE_FORMAT})
    check = check_precision(loaded.model, loaded.input, crops)
    metadata = json.loads((folder / METADATA_FILE).read_text())
    metadata["serving"] = check.to_json()
    write_json(folder / METADATA_FILE, metadata, indent=2)
    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maskdet.zoo.probe", description=store_probe.__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="MODEL", help="model names in models/ or model folders")
    parser.add_argument("--data", type=Path, help="the models' training folder (default: from their metadata)")
    args = parser.parse_args(argv)
    for model in args.models:
        check = store_probe(model, args.data)
        print(f"{model}: serves {check.precision}; bf16 max prob diff {check.bf16_max_prob_diff:.4f} on "
              f"{check.probe_crops} validation crops ({check.reason})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

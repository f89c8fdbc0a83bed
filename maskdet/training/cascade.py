"""A three-class model composed of two trained ones: the two-class model says bare or masked, the three-class
model only where the mask sits (:class:`maskdet.zoo.architectures.CascadeHead`).

Why: a three-class network trained on the few real incorrectly masked faces there are loses some of the
two-class figures (bare faces called masked, face-mask-4k's masked faces called "incorrect"); the cascade
keeps the two-class model's bare-or-masked judgement whole and borrows from the three-class model only the
mask's position, where it is strong (issue 24). Nothing is trained: the members' weights (each already
calibrated) are copied into one model folder, which then reads, exports and explains like any other.

The card is the three-class member's: its data set, split and crop provenance; the cascade is scored on that
split's validation and test files (the operating threshold is chosen on the validation scores, as training
does), and ``seen.json`` is the union of both members' train and validation files.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from maskdet.data.datasets import DatasetError, build_catalog, scan_dataset
from maskdet.data.fingerprints import SeenFiles
from maskdet.evaluation.metrics import compute_metrics
from maskdet.runtime import configure_threads
from maskdet.settings import CLASSES, KNOWN_CLASSES
from maskdet.training.loop import EVAL_BATCH, ImageItems, NormalizedBatches, evaluate, make_loader
from maskdet.zoo.architectures import BuildOptions, count_parameters, get_spec
from maskdet.zoo.decision import choose_threshold, threshold_rule
from maskdet.zoo.folders import (
    CheckpointError,
    LoadedModel,
    ModelFolder,
    save_model,
    stored_scores,
    validate_model_name,
)
from maskdet.zoo.probe import check_precision, select_probe_crops

logger = logging.getLogger(__name__)

CASCADE_ARCH = "mobilenet_v2_cascade"
MEMBER_ARCH = "mobilenet_v2"


def _check_members(bare: LoadedModel, position: LoadedModel) -> None:
    """CheckpointError unless ``bare`` is a two-class and ``position`` a three-class MobileNetV2 fed alike."""
    for role, member, classes in (("bare", bare, CLASSES), ("position", position, KNOWN_CLASSES)):
        if member.metadata["arch"] != MEMBER_ARCH or tuple(member.metadata["classes"]) != classes:
            raise CheckpointError(f"{member.name}: the {role} member of a cascade must be a {len(classes)}-class "
                                  f"{MEMBER_ARCH} model, not a {len(member.metadata['classes'])}-class "
                                  f"{member.metadata['arch']}")
    if bare.input != position.input:
        raise CheckpointError(f"{bare.name} and {position.name} take different inputs ({bare.input.size} px vs "
                              f"{position.input.size} px or other normalisation): a cascade feeds both one tensor")


def _member_record(member: LoadedModel) -> dict:
    return {"name": member.name, "weights_sha256": member.metadata["weights"]["sha256"],
            "operating_threshold": member.metadata.get("operating_threshold"), "command": member.metadata.get("command")}


def _seen_union(bare: ModelFolder, position: ModelFolder) -> SeenFiles | None:
    """Both members' train and validation files, keyed by member (two crop sets may use one file name)."""
    seen = {role: folder.seen() for role, folder in (("bare", bare), ("position", position))}
    if any(value is None for value in seen.values()):
        return None
    return SeenFiles({f"{role}:{relpath}": hashes for role, value in seen.items() for relpath, hashes in value.files.items()})


def compose_cascade(bare: str | Path, position: str | Path, data: str | Path, name: str,
                    directory: Path | None = None, command: str | None = None) -> Path:
    """Write ``models/NAME``: the cascade of the two-class model ``bare`` and the three-class model ``position``,
    scored on the validation and test splits of ``position``'s training data ``data`` (the very folder: its
    fingerprint must match the card's), with its operating threshold chosen on the validation scores."""
    validate_model_name(name)
    started = time.monotonic()
    configure_threads()
    bare_folder, position_folder = ModelFolder.open(bare, directory), ModelFolder.open(position, directory)
    bare_model, position_model = bare_folder.load(), position_folder.load()
    _check_members(bare_model, position_model)
    split = position_folder.split()
    if not split:
        raise CheckpointError(f"{position_folder.path}: no saved split to score the cascade on")
    scan = scan_dataset(data)
    recorded = (position_model.metadata.get("dataset") or {}).get("fingerprint")
    if scan.fingerprint != recorded:
        raise DatasetError(f"{data} is not the data {position_model.name} was trained on (fingerprint "
                           f"{scan.fingerprint}, its card says {recorded}): its split would name other files")
    labels = {record.relpath: record.label for record in build_catalog(scan).readable}

    config = position_model.input
    model = get_spec(CASCADE_ARCH).build(BuildOptions(pretrained=False, img_size=config.size, num_classes=3))
    model.backbone.bare.load_state_dict(bare_model.model.state_dict())
    model.backbone.position.load_state_dict(position_model.model.state_dict())
    model.eval()

    def score(split_name: str) -> tuple[np.ndarray, np.ndarray]:
        relpaths = [p for p in split[split_name] if p in labels]
        items = ImageItems(scan.root, relpaths, [labels[p] for p in relpaths], config, None)
        batches = NormalizedBatches(make_loader(items, EVAL_BATCH, None, 0), config, torch.device("cpu"))
        with torch.inference_mode():
            _, _, truth, probabilities = evaluate(model, batches, nn.CrossEntropyLoss())
        return truth, probabilities

    (val_y, val_scores), (test_y, test_scores) = score("val"), score("test")
    total, _ = count_parameters(model)
    metadata = {
        "arch": CASCADE_ARCH,
        "classes": list(KNOWN_CLASSES),
        "command": command,
        "input": config.to_json(),
        "build": {"finetune_blocks": 0, "pretrained": False,
                  "members": {"bare": _member_record(bare_model), "position": _member_record(position_model)}},
        "mode": "composed",
        "dataset": position_model.metadata.get("dataset"),
        "calibration": {"method": "none: each member was calibrated by its own training"},
        "split_counts": position_model.metadata.get("split_counts"),
        "hyperparameters": {"bare": bare_model.name, "position": position_model.name},
        "metrics": {"val": compute_metrics(val_y, val_scores), "test": compute_metrics(test_y, test_scores)},
        "evaluation": {"test": stored_scores(test_y, test_scores), "val": stored_scores(val_y, val_scores)},
        "history": [],
        "params": {"total": total, "trainable": 0},
        "training_seconds": round(time.monotonic() - started, 1),
        "device": "cpu",
        # Chosen as `maskdet threshold` chooses, and saved with the folder: it never exists without its threshold.
        "operating_threshold": choose_threshold(val_y, val_scores),
        "operating_threshold_chosen_on": f"validation split ({threshold_rule()})",
    }
    val_files = [p for p in split["val"] if p in labels]
    probe = select_probe_crops(model, config, scan.root, val_files, [labels[p] for p in val_files])
    metadata["serving"] = check_precision(model, config, probe).to_json()
    path = save_model(model, metadata, name, split=split, directory=directory, probe=probe,
                      seen=_seen_union(bare_folder, position_folder), crops=position_folder.crops())
    logger.info("composed %s from %s and %s: operating threshold %s", name, bare_model.name, position_model.name,
                metadata["operating_threshold"])
    return path

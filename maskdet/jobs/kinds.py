"""The job kinds maskdet ships: ``train``, ``evaluate-folder`` and ``evaluate-scenes``.

Each function runs in the job's process; heavy modules are imported there, not in the server.
Params and results are JSON-like (see :mod:`maskdet.jobs.registry`).
"""

from __future__ import annotations

from pathlib import Path

from maskdet.jobs.base import JobContext, JobProgress
from maskdet.jobs.registry import job_kind

EVALUATION_STAGES = {"reading": (0.0, 0.3), "classifying": (0.3, 1.0)}  # share of the job each stage covers
DEFAULT_SCENE_IOU = 0.5


def _resolve_training(params: dict) -> dict:
    """Fill defaults and check the architecture and model name before a process starts."""
    from maskdet.checkpoint import validate_model_name
    from maskdet.engine import TrainConfig

    config = TrainConfig.from_json(params).resolved()
    validate_model_name(config.name)
    return config.to_json()


def _describe_training(params: dict) -> str:
    return f"training {params['name']} ({params['arch']}) on {params['data']}"


@job_kind("train", title="training", prepare=_resolve_training, describe=_describe_training)
def run_training(params: dict, job: JobContext) -> dict:
    """:func:`maskdet.engine.fit`; the result names the saved model and its metrics."""
    import copy

    from maskdet.engine import TrainConfig, fit

    result = fit(TrainConfig.from_json(params), progress=job.report, cancel=job)
    return {
        "model_name": result.name,
        "model_path": str(result.path),
        "metrics": copy.deepcopy(result.metadata.get("metrics")),
        "summary": f"{result.name} saved in {result.path}",
    }


def _check_evaluation(params: dict) -> dict:
    from maskdet.checkpoint import resolve_model_dir

    return {"model": str(resolve_model_dir(Path(params["model"]))), "data": str(Path(params["data"]))}


@job_kind("evaluate-folder", title="folder evaluation", prepare=_check_evaluation,
          describe=lambda p: f"evaluating {Path(p['model']).name} on {p['data']}")
def run_folder_evaluation(params: dict, job: JobContext) -> dict:
    """:func:`maskdet.compare.evaluate_dataset` (cached per model and data content); the result is its JSON."""
    from maskdet.checkpoint import read_metadata
    from maskdet.compare import evaluate_dataset, summarize

    folder = Path(params["model"])
    summary = summarize({**read_metadata(folder), "name": folder.name, "path": str(folder)})

    def progress(stage: str, done: int, total: int) -> None:
        start, end = EVALUATION_STAGES.get(stage, (0.0, 1.0))
        fraction = start + (end - start) * (done / total if total else 1.0)
        job.report(JobProgress(phase=stage, message=f"{stage.capitalize()} {done}/{total}", fraction=fraction))

    evaluation = evaluate_dataset(summary, params["data"], progress=progress)
    return {**evaluation.to_json(), "summary": f"{summary.name} on {evaluation.data}: "
            f"accuracy {evaluation.metrics.get('accuracy', float('nan')):.4f}"}


def _check_scene_evaluation(params: dict) -> dict:
    from maskdet.scenes import scene_fingerprint

    iou = float(params.get("iou", DEFAULT_SCENE_IOU))
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"iou must be in (0, 1], got {iou}")
    scene_fingerprint(params["data"])  # a folder that is no boxed-photo set is refused before a process starts
    return {"model": params.get("model"), "data": str(Path(params["data"])), "detector": params.get("detector"),
            "iou": iou, "class_map": dict(params.get("class_map") or {})}


@job_kind("evaluate-scenes", title="scene evaluation", prepare=_check_scene_evaluation,
          describe=lambda p: f"evaluating scenes in {p['data']} with {p['model'] or 'the default model'}")
def run_scene_evaluation(params: dict, job: JobContext) -> dict:
    """:func:`maskdet.scenes.evaluate_scenes` with the photo pipeline; the result is its ``--json`` object."""
    from maskdet.pipeline import build_pipeline
    from maskdet.scenes import evaluate_scenes

    options = {"detector": params["detector"]} if params.get("detector") else {}
    pipeline = build_pipeline(params.get("model"), **options)

    def progress(done: int, total: int) -> None:
        job.report(JobProgress(phase="evaluate", message=f"Photo {done}/{total}", fraction=done / total if total else 1.0))

    result = evaluate_scenes(pipeline, params["data"], iou=params["iou"], class_map=params["class_map"] or None,
                             progress=progress)
    return {**result.to_json(), "summary": f"scenes in {result.data}: recall {result.metrics.get('detection_recall')}"}

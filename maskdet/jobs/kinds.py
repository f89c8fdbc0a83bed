"""The job kinds maskdet ships: ``train``, ``evaluate-folder``, ``evaluate-scenes``, ``analyse-video`` and
``score-batch``.

Each function runs in the job's process; heavy modules are imported there, not in the server.
Params and results are JSON-like (see :mod:`maskdet.jobs.registry`).
"""

from __future__ import annotations

from pathlib import Path

from maskdet.jobs.base import JobCancelled, JobContext, JobProgress
from maskdet.jobs.registry import job_kind

EVALUATION_STAGES = {"reading": (0.0, 0.3), "classifying": (0.3, 1.0)}  # share of the job each stage covers
DEFAULT_SCENE_IOU = 0.5
DEFAULT_DETECTOR = "centerface"  # the product's setting (maskdet.inference.detector.DETECTORS)


def _detector_setting(params: dict) -> str:
    """The job's detector setting (default: the product's), refused before a process starts when unknown."""
    from maskdet.inference.detector import DETECTORS

    detector = params.get("detector") or DEFAULT_DETECTOR
    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}; known: {', '.join(DETECTORS)}")
    return detector


def _resolve_training(params: dict) -> dict:
    """Fill defaults and check the architecture and model name before a process starts."""
    from maskdet.zoo.folders import validate_model_name
    from maskdet.training.loop import TrainConfig

    config = TrainConfig.from_json(params).resolved()
    validate_model_name(config.name)
    return config.to_json()


def _describe_training(params: dict) -> str:
    return f"training {params['name']} ({params['arch']}) on {params['data']}"


@job_kind("train", title="training", prepare=_resolve_training, describe=_describe_training)
def run_training(params: dict, job: JobContext) -> dict:
    """:func:`maskdet.training.loop.fit`; the result names the saved model and its metrics."""
    import copy

    from maskdet.training.loop import TrainConfig, fit

    result = fit(TrainConfig.from_json(params), progress=job.report, cancel=job)
    return {
        "model_name": result.name,
        "model_path": str(result.path),
        "metrics": copy.deepcopy(result.metadata.get("metrics")),
        "summary": f"{result.name} saved in {result.path}",
    }


def _check_evaluation(params: dict) -> dict:
    """The model (a name in ``models/``, a path, or None for the default, as every kind takes it) opened and
    checked before a process starts."""
    from maskdet.zoo.folders import ModelFolder

    return {"model": str(ModelFolder.open(params.get("model")).path), "data": str(Path(params["data"]))}


@job_kind("evaluate-folder", title="folder evaluation", prepare=_check_evaluation,
          describe=lambda p: f"evaluating {Path(p['model']).name} on {p['data']}")
def run_folder_evaluation(params: dict, job: JobContext) -> dict:
    """:func:`maskdet.evaluation.unseen.evaluate_dataset` (cached per model and data content); the result is its JSON."""
    from maskdet.zoo.folders import ModelFolder
    from maskdet.evaluation.summary import summarize
    from maskdet.evaluation.unseen import evaluate_dataset

    folder = ModelFolder.at(Path(params["model"]))
    summary = summarize({**folder.metadata, "name": folder.name, "path": str(folder.path)})

    def progress(stage: str, done: int, total: int) -> None:
        start, end = EVALUATION_STAGES.get(stage, (0.0, 1.0))
        fraction = start + (end - start) * (done / total if total else 1.0)
        job.report(JobProgress(phase=stage, message=f"{stage.capitalize()} {done}/{total}", fraction=fraction))

    evaluation = evaluate_dataset(summary, params["data"], progress=progress, folder=folder)
    return {**evaluation.to_json(), "summary": f"{summary.name} on {evaluation.data}: "
            f"accuracy {evaluation.metrics.get('accuracy', float('nan')):.4f}"}


def _check_scene_evaluation(params: dict) -> dict:
    from maskdet.data.annotations import scene_fingerprint

    iou = float(params.get("iou", DEFAULT_SCENE_IOU))
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"iou must be in (0, 1], got {iou}")
    detector = _detector_setting(params)
    scene_fingerprint(params["data"])  # a folder that is no boxed-photo set is refused before a process starts
    return {"model": params.get("model"), "data": str(Path(params["data"])), "detector": detector,
            "iou": iou, "class_map": dict(params.get("class_map") or {})}


@job_kind("evaluate-scenes", title="scene evaluation", prepare=_check_scene_evaluation,
          describe=lambda p: f"evaluating scenes in {p['data']} with {p['model'] or 'the default model'} + "
                             f"{p['detector']}")
def run_scene_evaluation(params: dict, job: JobContext) -> dict:
    """The photo pipeline (``model`` + the named ``detector`` setting) scored on a boxed-photo folder.

    Goes through :func:`maskdet.evaluation.scenes.runs.evaluate_cached`: the result is the ``evaluate-scenes --json``
    object plus its ``cache_key``, under which the Compare page reads it back.
    """
    from maskdet.inference.predictor import load_classifier
    from maskdet.inference.detector import get_detector
    from maskdet.inference.pipeline import FacePipeline
    from maskdet.data.annotations import load_scene_set
    from maskdet.evaluation.scenes.runs import evaluate_cached

    pipeline = FacePipeline(load_classifier(params.get("model")), get_detector(params["detector"]))
    scenes = load_scene_set(params["data"], class_map=params["class_map"] or None)

    def progress(done: int, total: int) -> None:
        job.report(JobProgress(phase="evaluate", message=f"Photo {done}/{total}", fraction=done / total if total else 1.0))

    key, metrics = evaluate_cached(pipeline, scenes, iou=params["iou"], class_map=params["class_map"],
                                   progress=progress)
    return {**metrics, "cache_key": key,
            "summary": f"scenes in {metrics['data']}: recall {metrics.get('detection_recall')}"}


# --- analyse-video: one clip into an output folder (maskdet.video.results) -------------------------

def _check_video_analysis(params: dict) -> dict:
    """Refuse a missing clip, a bad setting or an unknown model before a process starts; the clip itself is
    decoded in the job (an undecodable file fails the job with the decoder's reason)."""
    from maskdet.zoo.folders import resolve_model
    from maskdet.zoo.decision import validate_threshold

    missing = sorted({"clip", "output"} - set(params))
    if missing:
        raise ValueError(f"a video analysis needs {' and '.join(missing)}")
    clip = Path(params["clip"])
    if not clip.is_file():
        raise ValueError(f"clip {clip} does not exist")
    every = params.get("every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a whole number of at least 1, got {every!r}")
    detector = _detector_setting(params)
    threshold = params.get("threshold")
    return {"clip": str(clip), "model": str(resolve_model(params.get("model"))), "detector": detector,
            "detector_options": dict(params.get("detector_options") or {}), "every": every,
            "threshold": None if threshold is None else validate_threshold(threshold),
            "output": str(Path(params["output"]))}


@job_kind("analyse-video", title="video analysis", prepare=_check_video_analysis,
          describe=lambda p: f"analysing {Path(p['clip']).name} with {Path(p['model']).name}, every {p['every']}. frame")
def run_video_analysis(params: dict, job: JobContext) -> dict:
    """:func:`maskdet.video.results.analyse_to_folder` into ``params["output"]``; the result names the folder.

    ``threshold`` (None: the model card's operating threshold) labels faces with a mask from that p(with mask).
    """
    from maskdet.inference.pipeline import build_pipeline
    from maskdet.video.results import analyse_to_folder

    job.report(JobProgress(phase="loading", message="Loading the models"))
    pipeline = build_pipeline(params["model"], detector=params["detector"],
                              detector_options=params["detector_options"])
    if params["threshold"] is not None:
        pipeline.classifier.threshold = params["threshold"]  # this process's own classifier

    def progress(done: int, expected: int) -> None:
        job.report(JobProgress(phase="analyse", message=f"Frame {done} of {expected or '?'}",
                               fraction=min(done / expected, 1.0) if expected else 0.0))

    results = analyse_to_folder(params["clip"], pipeline, params["output"], every=params["every"], progress=progress)
    note = f" (stopped early: {results.error})" if results.error else ""
    return {"output": str(results.folder), "frames": len(results.frames), "error": results.error,
            "summary": f"{len(results.frames)} frames of {Path(params['clip']).name} analysed{note}"}


# --- batch scoring ---------------------------------------------------------------------------------

def _check_batch(params: dict) -> dict:
    """Resolve the model and engine, refuse an output that would lose records, before a process starts."""
    from maskdet.batch import ENGINES
    from maskdet.batch.run import DEFAULT_BATCH_SIZE, check_output
    from maskdet.zoo.folders import resolve_model
    from maskdet.inference.pipeline import DEFAULT_MARGIN

    inputs = [str(Path(p)) for p in params.get("inputs") or []]
    if not inputs:
        raise ValueError("score-batch needs at least one input file or folder")
    if not params.get("output"):
        raise ValueError("score-batch writes its records to a file: give an output (.jsonl or .parquet)")
    workers, batch_size = int(params.get("workers", 1)), int(params.get("batch_size", DEFAULT_BATCH_SIZE))
    if workers < 1 or batch_size < 1:
        raise ValueError("workers and batch_size must be at least 1")
    engine = params.get("engine") or ("processes" if workers > 1 else "local")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    resume = bool(params.get("resume", False))
    check_output(params["output"], resume)
    return {"inputs": inputs, "output": str(Path(params["output"])), "resume": resume, "engine": engine,
            "workers": workers, "batch_size": batch_size, "model": str(resolve_model(params.get("model"))),
            "whole_image": bool(params.get("whole_image", False)), "detector": params.get("detector") or "centerface",
            "margin": float(params.get("margin", DEFAULT_MARGIN)), "ray_address": params.get("ray_address")}


def _batch_after_kill(params: dict) -> str:
    from maskdet.batch.sinks import after_killed_writer

    return after_killed_writer(params["output"])


@job_kind("score-batch", title="batch scoring", prepare=_check_batch,
          describe=lambda p: f"scoring {', '.join(p['inputs'])} with {Path(p['model']).name} ({p['engine']}) "
                             f"into {p['output']}", after_kill=_batch_after_kill)
def run_batch_scoring(params: dict, job: JobContext) -> dict:
    """:func:`maskdet.batch.run_batch` into the ``output`` file (JSON lines or Parquet), resumable, cancellable
    between batches; the result is the run's :class:`~maskdet.batch.BatchSummary` and the output path."""
    import dataclasses

    from maskdet.batch import PipelineSpec, get_engine, run_batch
    from maskdet.batch.sinks import open_sink, resume_jsonl
    from maskdet.zoo.folders import load_model

    done = resume_jsonl(params["output"]) if params["resume"] else set()
    load_model(params["model"])  # a refused model is refused here, once, not in every worker
    spec = PipelineSpec(model=params["model"], whole_image=params["whole_image"], detector=params["detector"],
                        margin=params["margin"])
    engine = get_engine(params["engine"], workers=params["workers"], ray_address=params["ray_address"])

    def progress(scored: int, total: int | None) -> None:
        of = f" / {total:,}" if total else ""
        job.report(JobProgress(phase="score", message=f"Scored {scored:,}{of} images",
                               fraction=min(scored / total, 1.0) if total else 0.0))

    sink = open_sink(params["output"])
    try:
        summary = run_batch(params["inputs"], spec, engine, sink, done=done, batch_size=params["batch_size"],
                            progress=False, on_batch=progress)
    except JobCancelled as exc:
        raise JobCancelled(str(exc), saved=sink.saved) from exc
    return {**dataclasses.asdict(summary), "output": params["output"],
            "summary": f"{summary.images} images scored into {params['output']} in {summary.seconds:.1f} s "
                       f"({summary.errors} failed, {summary.skipped} already done)"}

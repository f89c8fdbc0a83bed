"""Command line interface: ``python -m maskdet {train,cut-crops,evaluate,evaluate-scenes,config,models,datasets,predict,export,
watch,bench}``."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections import Counter
from pathlib import Path

from maskdet import __version__
from maskdet.zoo.assets import AssetUnavailableError
from maskdet.zoo.folders import CheckpointError, ModelMissing, recover_interrupted_saves
from maskdet.data.datasets import DatasetError
from maskdet.data.images import ImageDecodeError
from maskdet.zoo.decision import MAX_BARE_CALLED_MASKED, THRESHOLD

logger = logging.getLogger(__name__)

EXIT_ERROR = 1
EXIT_SOME_FILES_FAILED = 2
EXIT_MODEL_REFUSED = 2
"""A ``--model`` that is not ours or damaged (``CheckpointError``); a missing one (``ModelMissing``) is 1."""
EXIT_EXPORT_REFUSED = 2
EXIT_FETCH_FAILED = 2
"""``datasets get``: the source cannot be reached, or a file is missing or differs from the manifest."""
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


class CliError(Exception):
    """A user-facing failure: printed as one clear message, exit status 1."""


def _format_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _print_metrics(title: str, metrics: dict) -> None:
    print(f"{title}: n={metrics['n']}  accuracy={_format_pct(metrics['accuracy'])}  "
          f"roc_auc={metrics['roc_auc'] if metrics['roc_auc'] is None else round(metrics['roc_auc'], 4)}  "
          f"ap={metrics['average_precision'] if metrics['average_precision'] is None else round(metrics['average_precision'], 4)}")
    for cls, values in metrics["per_class"].items():
        print(f"  {cls:<13} precision={values['precision']:.4f} recall={values['recall']:.4f} "
              f"f1={values['f1']:.4f} support={values['support']}")
    confusion = metrics["confusion"]
    if len(confusion) == 2:
        (tn, fp), (fn, tp) = confusion
        print(f"  confusion [[tn fp] [fn tp]] = [[{tn} {fp}] [{fn} {tp}]]")
    else:
        print(f"  confusion (rows actual, columns predicted: {' '.join(metrics['classes'])}) = {confusion}")
    for cls, outside in (metrics.get("outside_classes") or {}).items():
        called = ", ".join(f"{name} {count}" for name, count in outside["called"].items())
        print(f"  {cls}: {outside['faces']} image(s) of a class the model lacks (not scored), called: {called}")


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from maskdet.zoo.folders import resolve_model, set_default_model
    from maskdet.training.loop import TrainConfig, TrainProgress, fit

    config = TrainConfig(
        arch=args.arch, data=Path(args.data), name=args.name, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, img_size=args.img_size, seed=args.seed, augment=not args.no_augment, robust=args.robust,
        calibrate=not args.no_calibrate,
        feature_views=args.feature_views, finetune_blocks=args.finetune_blocks, pretrained=not args.no_pretrained,
        weights_path=Path(args.weights) if args.weights else None, limit_per_class=args.limit_per_class,
        init_from=resolve_model(args.init_from) if args.init_from else None, class_weighted=args.class_weighted,
        command="python -m maskdet " + shlex.join(sys.argv[1:]),
    )
    bar = tqdm(total=1000, unit="‰", bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}", file=sys.stderr,
               disable=args.quiet)

    def show(progress: TrainProgress) -> None:
        bar.set_description_str(f"{progress.phase:<8}")
        bar.set_postfix_str(progress.message[:60])
        bar.update(int(progress.fraction * 1000) - bar.n)

    try:
        result = fit(config, progress=show)
    finally:
        bar.close()
    meta = result.metadata
    print(f"saved {result.path} ({meta['mode']}, {meta['training_seconds']} s, best epoch "
          f"{meta['hyperparameters']['best_epoch']})")
    _print_metrics("validation", meta["metrics"]["val"])
    _print_metrics("test (held out)", meta["metrics"]["test"])
    if args.set_default:
        set_default_model(result.name)
        print(f"{result.name} is now the default model")
    return 0


def cmd_compose_cascade(args: argparse.Namespace) -> int:
    from maskdet.training.cascade import compose_cascade
    from maskdet.zoo.folders import read_metadata

    path = compose_cascade(args.bare, args.position, Path(args.data), args.name,
                           command="python -m maskdet " + shlex.join(sys.argv[1:]))
    meta = read_metadata(path)
    print(f"saved {path} (operating threshold {meta['operating_threshold']:g}, chosen on its validation scores)")
    _print_metrics("validation", meta["metrics"]["val"])
    _print_metrics("test (held out)", meta["metrics"]["test"])
    return 0


def cmd_cut_crops(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from maskdet.inference.detector import get_detector
    from maskdet.training.crops import CropSettings, build_crop_set

    settings = CropSettings(margin=args.margin, iou=args.iou, seed=args.seed, occlude=args.occlude,
                            from_annotation=not args.detected_only)
    with tqdm(total=0, unit="photo", file=sys.stderr, disable=args.quiet, desc="cutting") as bar:
        def show(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = build_crop_set(
            [Path(p) for p in args.data], args.name, include=[Path(p) for p in args.include or []],
            detector=get_detector(args.detector), settings=settings,
            command="python -m maskdet " + shlex.join(sys.argv[1:]), progress=show,
        )
    manifest = report.manifest
    for source in manifest["sources"]:
        details = source.get("crops") or source.get("split_counts")
        print(f"{source['path']}: {details}; occluded copies {source['occluded_copies']}", file=sys.stderr)
        for name, reason in source.get("errors", []):
            print(f"  skipped {name}: {reason}", file=sys.stderr)
    print(f"per split: {manifest['counts']}", file=sys.stderr)
    print(report.path)  # alone on stdout: train --data "$(python -m maskdet cut-crops ...)"
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from maskdet.inference.predictor import load_classifier
    from maskdet.evaluation.folder import evaluate_folder

    classifier = load_classifier(args.model)
    with tqdm(total=0, unit="img", file=sys.stderr, disable=args.json or args.quiet, desc="evaluating") as bar:
        def show(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = evaluate_folder(classifier, Path(args.data), progress=show, split=args.split)
    if result.overlap is None:
        print(f"note: {result.model}'s training data is not here, so overlap with it was not checked", file=sys.stderr)
    elif result.overlap.overlapping:
        hint = " Use --split test for the model's held-out test split." if args.split == "all" else ""
        print(f"WARNING: {result.overlap.message()}{hint}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        _print_metrics(f"{result.model} on {result.data} at threshold {THRESHOLD}", result.metrics)
        if result.operating_metrics is not None:
            _print_metrics(f"at its operating threshold {result.threshold:g}", result.operating_metrics)
        else:
            print(f"  (operating threshold {result.threshold:g}: the same)")
        for relpath, error in result.unreadable:
            print(f"  skipped unreadable {relpath}: {error}")
        for relpath, reason in result.skipped:
            print(f"  skipped {relpath}: {reason}")
    return 0


def _class_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source or not target:
            raise CliError(f"--map-class expects NAME=CLASS (e.g. mask_weared_incorrect=without_mask), got {pair!r}")
        mapping[source] = target
    return mapping


def _print_scene_metrics(metrics: dict) -> None:
    detector = metrics["detector"]
    settings = ", ".join(f"{k}={v}" for k, v in detector.items() if k != "name")
    print(f"{metrics['model']} + {detector['name']}({settings}) on {metrics['data']} at IoU >= {metrics['iou']}: "
          f"{metrics['images']} photos, {metrics['faces']} faces, {metrics['seconds']:.1f} s")
    print(f"  detection recall={_format_pct(metrics['detection_recall'])}  "
          f"precision={_format_pct(metrics['detection_precision'])}  false positives={metrics['false_positives']}")
    print(f"  accuracy on detected={_format_pct(metrics['accuracy_on_detected'])}  "
          f"end to end={_format_pct(metrics['end_to_end_accuracy'])}  mAP50={_format_pct(metrics['map50'])}")
    for name, values in metrics["per_class"].items():
        print(f"  {name:<13} faces={values['faces']:<5} recall={_format_pct(values['recall'])}  "
              f"AP50={_format_pct(values['ap50'])}  accuracy on detected={_format_pct(values['accuracy_on_detected'])}")
    for name, count in metrics["unknown_classes"].items():
        print(f"  ignored {count} face(s) of unknown class {name!r} (map it with --map-class {name}=CLASS)")
    for problem in metrics["problems"]:
        print(f"  skipped {problem['path']}: {problem['reason']}")
    kinds = Counter(error["kind"] for error in metrics["errors"])
    print("  errors: " + (", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in sorted(kinds.items()))
                          or "none"))


def cmd_evaluate_scenes(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from maskdet.inference.predictor import load_classifier
    from maskdet.inference.detector import get_detector
    from maskdet.inference.pipeline import FacePipeline
    from maskdet.evaluation.scenes import evaluate_scenes

    if not 0.0 < args.iou <= 1.0:
        raise CliError(f"--iou must be in (0, 1], got {args.iou}")
    pipeline = FacePipeline(load_classifier(args.model), get_detector(args.detector))
    with tqdm(total=0, unit="photo", file=sys.stderr, disable=args.json or args.quiet, desc="evaluating") as bar:
        def show(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = evaluate_scenes(pipeline, Path(args.data), iou=args.iou, class_map=_class_map(args.map_class),
                                 progress=show)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        _print_scene_metrics(result.metrics)
    return 0


def _field(metadata: dict, *keys: str) -> object:
    """``metadata[k1][k2]...``, or None where a level is missing or not an object (informational fields are lax)."""
    value: object = metadata
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def cmd_threshold(args: argparse.Namespace) -> int:
    from maskdet.zoo.folders import choose_operating_threshold, resolve_model, set_operating_threshold

    if args.on is not None:
        from maskdet.evaluation.folder import choose_threshold_on_folder

        if args.value is not None:
            raise CliError("--on chooses the threshold on a folder of faces; --value sets one: give one of them")
        print(choose_threshold_on_folder(args.model, Path(args.on), args.max_bare_called_masked).summary())
        return 0
    folder = resolve_model(args.model)
    if args.value is not None:
        metadata = set_operating_threshold(folder, args.value, chosen_on=args.chosen_on)
    else:
        metadata = choose_operating_threshold(folder, max_bare_called_masked=args.max_bare_called_masked)
    print(f"{folder.name}: operating threshold {metadata['operating_threshold']:g}"
          f"{f' (chosen on {c})' if (c := metadata.get('operating_threshold_chosen_on')) else ''}")
    return 0


def cmd_fingerprint_model(args: argparse.Namespace) -> int:
    """Add ``seen.json`` (hashes of the train / val files) to a model folder from before it, and for a crop-set
    model ``crops.json`` (what each held-out crop is); nothing else changes."""
    from maskdet.data.datasets import load_catalog, read_manifest, scan_dataset
    from maskdet.data.fingerprints import seen_files
    from maskdet.evaluation.leakage import SEEN_SPLITS, training_folder
    from maskdet.training.crops import HELD_OUT_SPLITS, MANIFEST_FORMAT as CROP_SET_FORMAT, crop_provenance
    from maskdet.zoo.folders import ModelFolder, write_crops, write_seen

    opened = ModelFolder.open(args.model)
    data = Path(args.data) if args.data else training_folder(opened.metadata)
    split = opened.split()
    if not split:
        raise CliError(f"{opened.name} kept no split: there is nothing to fingerprint")
    scan = scan_dataset(data)
    recorded = str((opened.metadata.get("dataset") or {}).get("fingerprint") or "")
    if len(recorded) == len(scan.fingerprint) and scan.fingerprint != recorded:  # older cards: another algorithm
        raise CliError(f"{data} is not the data {opened.name} trained on (its content fingerprint is "
                       f"{scan.fingerprint}, the model card records {recorded}); give the right folder with --data")
    catalog = load_catalog(data)
    labels = {record.relpath: record.label for record in catalog.readable}
    seen_paths = [path for part in SEEN_SPLITS for path in split.get(part, [])]
    missing = [path for path in seen_paths if labels.get(path) != split.get("labels", {}).get(path)]
    if missing:
        raise CliError(f"{data} is not the data {opened.name} trained on: {len(missing)} of its {len(seen_paths)} "
                       f"train / val files are missing or differ there (e.g. {missing[0]})")
    seen = seen_files(catalog, seen_paths)
    write_seen(opened.path, seen)
    print(f"{opened.path}: hashes of {len(seen.files)} train / val files written")
    if read_manifest(data).get("format") == CROP_SET_FORMAT:
        crops = crop_provenance(data, [path for part in HELD_OUT_SPLITS for path in split.get(part, [])])
        write_crops(opened.path, crops)
        print(f"{opened.path}: the origins of {len(crops.crops)} held-out crops written")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Every setting (:class:`maskdet.settings.Settings`): its effective value, where it came from, what it means."""
    from maskdet.settings import describe_settings

    rows = [{**row, "value": None if row["value"] is None else str(row["value"])} for row in describe_settings()]
    if args.json:
        print(json.dumps(rows))
        return 0
    width = max(len(row["variable"]) for row in rows)
    for row in rows:
        value = "(unset)" if row["value"] is None else row["value"]
        print(f"{row['variable']:<{width}}  {value}  [{row['source']}]")
        print(f"{'':<{width}}  {row['description']}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from maskdet.zoo.folders import default_model_name, operating_threshold, scan_models

    models, broken = scan_models()
    default = default_model_name()
    rows = [
        {
            "name": m["name"], "arch": m["arch"], "default": m["name"] == default, "created": m.get("created"),
            "input_size": m["input"]["size"], "mode": m.get("mode"),
            "test_accuracy": _field(m, "metrics", "test", "accuracy"),
            "test_roc_auc": _field(m, "metrics", "test", "roc_auc"),
            "params": _field(m, "params", "total"), "operating_threshold": operating_threshold(m),
            "path": m["path"], "broken": None,
        }
        for m in models
    ]
    rows += [{"name": b.name, "path": str(b.path), "default": False, "broken": b.reason} for b in broken]
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print("no trained models yet: run `python -m maskdet train --arch mobilenet_v2 --data DIR`")
        return 0
    name_width = max(28, *(len(str(row["name"])) + 2 for row in rows))
    arch_width = max(14, *(len(str(row.get("arch", ""))) + 2 for row in rows))
    print(f"{'':2}{'name':<{name_width}}{'arch':<{arch_width}}{'size':>5}{'test acc':>10}{'roc auc':>9}{'threshold':>11}"
          "  created")
    for row in rows[: len(models)]:
        auc = row["test_roc_auc"]
        accuracy = row["test_accuracy"]
        print(f"{'*' if row['default'] else ' ':2}{row['name']:<{name_width}}{row['arch']:<{arch_width}}{row['input_size']:>5}"
              f"{_format_pct(accuracy if isinstance(accuracy, float) else None):>10}"
              f"{f'{auc:.4f}' if isinstance(auc, float) else 'n/a':>9}{row['operating_threshold']:>11.3g}"
              f"  {row['created']}")
    for item in broken:
        print(f"{'':2}{item.name:<{name_width}}BROKEN: {item.reason}")
    return 0


def _summary_sink():
    """``predict`` without ``--json``: one readable line per image or video frame on stdout."""
    from maskdet.batch.sinks import StreamSink

    class SummarySink(StreamSink):
        def write(self, record: dict) -> None:
            if "error" in record:
                print(f"{record['path']}: ERROR {record['error']}", flush=True)
            else:
                summary = ", ".join(f"{f['label']} {f['confidence']:.0%}" for f in record["faces"]) or "no face found"
                where = f" frame {record['frame']} at {record['time']:.2f} s" if "frame" in record else ""
                print(f"{record['path']}{where} ({record['width']}x{record['height']}): {summary}", flush=True)
            self.records += 1

    return SummarySink()


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:,.0f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:,.0f} kB"


def cmd_datasets_list(args: argparse.Namespace) -> int:
    from maskdet.data.local import local_inventory
    from maskdet.data.public import registry

    public = [dataset.describe() for dataset in registry()]
    local = local_inventory()
    if args.json:
        print(json.dumps({"public": public, "local": local}, indent=1))
        return 0
    print("public data sets (python -m maskdet datasets get NAME):")
    for row in public:
        print(f"  {row['name']:<32} {row['licence']:<8} {_size(row['bytes']):>8}  {row['description']}")
        print(f"  {'':<32} layout: {row['layout']}; source: {row['source']}")
    print("on this machine:")
    for row in local:
        print(f"  {row['name']:<32} {row['kind']:<13} {row['images']:>6} images  {row['path']} ({row['where']})")
    return 0


def cmd_datasets_get(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from maskdet.data.public import FetchError, fetch

    bar = tqdm(total=None, unit="B", unit_scale=True, desc=args.name, file=sys.stderr, disable=args.quiet)

    def show(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        result = fetch(args.name, destination=Path(args.to).expanduser() if args.to else None, progress=show,
                       command="python -m maskdet " + shlex.join(sys.argv[1:]))
    except FetchError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FETCH_FAILED
    bar.close()
    if result.already_there:
        print(f"{result.path} already exists; remove it to fetch {args.name} again")
    else:
        print(f"saved {result.path} ({result.files} files verified, {result.downloaded} downloaded now)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from maskdet.batch import PipelineSpec, get_engine, run_batch
    from maskdet.batch.run import check_output
    from maskdet.batch.sinks import StreamSink, open_sink, resume_jsonl
    from maskdet.zoo.folders import load_model, resolve_model
    from maskdet.video import is_video_path

    if args.workers < 1 or args.batch_size < 1 or args.every < 1:
        raise CliError("--workers, --batch-size and --every must be at least 1")
    if args.annotate and not (len(args.paths) == 1 and is_video_path(Path(args.paths[0]))):
        raise CliError("--annotate writes one annotated clip: give exactly one video")
    engine_name = args.engine or ("processes" if args.workers > 1 else "local")
    try:
        check_output(args.output, args.resume)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.ray_address and engine_name != "ray":
        raise CliError("--ray-address goes with --engine ray")
    done = resume_jsonl(args.output) if args.resume else set()
    model = resolve_model(args.model)
    load_model(model)  # a refused model is refused here, once, not in every worker
    spec = PipelineSpec(model=str(model), whole_image=args.whole_image, every=args.every, annotate=args.annotate)
    try:
        engine = get_engine(engine_name, workers=args.workers, ray_address=args.ray_address)
    except KeyError as exc:
        raise CliError(exc.args[0]) from None
    if args.output:
        sink = open_sink(args.output)
    else:
        sink = StreamSink() if args.json else _summary_sink()
    try:
        summary = run_batch(args.paths, spec, engine, sink, done=done, batch_size=args.batch_size,
                            progress=False if args.quiet else None)
    except KeyboardInterrupt:
        print(f"interrupted; {sink.saved}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.output or not args.json:
        print(f"{summary.images} images in {summary.seconds:.1f} s ({summary.images_per_second:.1f} images/s), "
              f"{summary.errors} failed" + (f", {summary.skipped} already done" if args.resume else ""),
              file=sys.stderr)
    if summary.worker_failures:
        print(f"error: {summary.worker_failures} files were lost with a worker that died (see their records)",
              file=sys.stderr)
    return EXIT_SOME_FILES_FAILED if summary.errors else 0


def cmd_export(args: argparse.Namespace) -> int:
    from maskdet.export import ExportError, export_model

    try:
        report = export_model(args.model, args.output, fmt=args.format, force=args.force)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_EXPORT_REFUSED
    sizes = ", ".join(f"{name} {size / 2**20:.1f} MB" for name, size in report.file_bytes.items())
    print(f"exported {report.model} to {report.output} ({sizes})")
    print(f"checked on {report.crops} real validation face crops: onnxruntime vs PyTorch max abs probability "
          f"difference {report.max_prob_diff:.2e}, labels identical")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from maskdet.inference.pipeline import build_pipeline
    from maskdet.video.decode import VideoDecodeError
    from maskdet.video.stream import Source, watch_source
    from maskdet.inference.predictor import AUTO_BACKEND
    from maskdet.watch import WATCH_DETECTOR, Privacy, WatchConfig, WatchSession

    try:
        source = Source(args.source)  # before the models load: a wrong address is said at once
    except VideoDecodeError as exc:
        raise CliError(exc.reason) from exc
    config = WatchConfig(alert_after_s=args.alert_after, privacy=Privacy(args.privacy))
    # a stream lives long: the fastest faithful classifier backend, as the dashboard serves it
    session = WatchSession(build_pipeline(args.model, detector=WATCH_DETECTOR, backend=AUTO_BACKEND), config)
    show = (lambda e: print(json.dumps(e.to_json()), flush=True)) if args.json else (
        lambda e: print(f"{e.time:8.2f} s  track {e.track:<4} {e.kind:<8} {e.label or ''}", flush=True))
    try:
        for event in watch_source(source, session, record=args.record, realtime=args.realtime):
            show(event)
    except VideoDecodeError as exc:
        raise CliError(exc.reason) from exc
    except KeyboardInterrupt:
        for event in session.finish():
            show(event)
    summary = session.summary()
    if args.json:
        print(json.dumps({"summary": summary}))
    else:
        ratio = "n/a" if summary["compliance"] is None else f"{summary['compliance']:.0%}"
        people = ", ".join(f"{name} {count}" for name, count in summary["people"].items())
        print(f"people: {people} (undecided {summary['undecided']}); compliance {ratio}; alerts {summary['alerts']}")
    if args.record and config.privacy.keeps_pictures:
        print(f"recorded {args.record}", file=sys.stderr)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from maskdet.bench import format_table, run_benchmarks

    results = run_benchmarks(model=args.model, quick=args.quick)
    print(json.dumps(results) if args.json else format_table(results))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from maskdet.inference.detector import DETECTORS
    from maskdet.zoo.architectures import get_spec, list_architectures

    parser = argparse.ArgumentParser(prog="python -m maskdet", description="Face-mask detection studio.")
    parser.add_argument("--version", action="version", version=f"maskdet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train a model on a data-set folder and save it to models/NAME")
    train.add_argument("--arch", required=True, choices=list_architectures())
    train.add_argument("--data", required=True, help="data-set folder with one sub-folder per class")
    train.add_argument("--epochs", type=int)
    train.add_argument("--img-size", type=int, help="input size in pixels (default: the architecture's)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--name", help="model name (default: ARCH-DATE-TIME)")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float)
    finetunable = [spec for spec in map(get_spec, list_architectures()) if spec.supports_finetune]
    train.add_argument("--finetune-blocks", type=int, default=0, help="fine-tune the last N backbone blocks: "
                       + ", ".join(f"{spec.name} up to {spec.finetune_depth}" for spec in finetunable))
    train.add_argument("--feature-views", type=int, default=2,
                       help="frozen backbones: feature views per training image (1 clean + N-1 augmented)")
    train.add_argument("--no-augment", action="store_true")
    train.add_argument("--robust", action="store_true",
                       help="augment with camera conditions: low light, blur, noise, JPEG, low resolution, colour casts")
    train.add_argument("--no-calibrate", action="store_true",
                       help="keep the raw confidences (default: temperature scaling on the validation split)")
    train.add_argument("--weights", help="pretrained ImageNet weights file, when they cannot be downloaded")
    train.add_argument("--init-from", metavar="MODEL", help="start from a trained model's weights (same arch and "
                                                            "input size), e.g. to add the incorrect_mask class")
    train.add_argument("--no-pretrained", action="store_true",
                       help="train a transfer-learning architecture from random weights (not transfer learning)")
    train.add_argument("--limit-per-class", type=int, help="use at most N training images per class")
    train.add_argument("--class-weighted", action="store_true",
                       help="weigh the loss by inverse class frequency (a rare class such as incorrect_mask)")
    train.add_argument("--set-default", action="store_true", help="make the new model the default")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    cascade = sub.add_parser("compose-cascade", help="compose a three-class model from a two-class model (bare or "
                                                     "masked) and a three-class one (where the mask sits)")
    cascade.add_argument("--bare", required=True, help="the two-class mobilenet_v2 model (name or folder)")
    cascade.add_argument("--position", required=True, help="the three-class mobilenet_v2 model (name or folder)")
    cascade.add_argument("--data", required=True, help="the folder the three-class model was trained on: the "
                                                       "cascade is scored on its validation and test splits")
    cascade.add_argument("--name", required=True, help="the new model's folder name in models/")
    cascade.set_defaults(func=cmd_compose_cascade)

    cut = sub.add_parser("cut-crops", help="cut the faces of boxed photos with the product's detector into a "
                         "training set under the cache folder; prints its path")
    cut.add_argument("--data", required=True, action="append",
                     help="boxed-photo folder (images/ + Pascal VOC annotations/); repeatable")
    cut.add_argument("--include", action="append", help="ImageFolder data set to link in with its own split; repeatable")
    cut.add_argument("--name", required=True, help="crop-set name (a folder under the cache folder's crops/)")
    cut.add_argument("--margin", type=float, default=0.2, help="context around each face, as at inference")
    cut.add_argument("--iou", type=float, default=0.5, help="IoU at which a detection is an annotated face")
    cut.add_argument("--seed", type=int, default=0, help="seed of the photo-level split and the occluders")
    cut.add_argument("--occlude", type=float, default=0.5,
                     help="share of bare faces that also get a copy with a hand or object over the mouth")
    cut.add_argument("--detected-only", action="store_true", help="leave out faces the detector misses")
    cut.add_argument("--detector", default="centerface", choices=list(DETECTORS),
                     help="named detector setting: centerface is the product's; centerface-480 (480 px, peaks "
                          "above 0.35) cut the shipped default's crop set")
    cut.add_argument("-q", "--quiet", action="store_true")
    cut.set_defaults(func=cmd_cut_crops)

    evaluate = sub.add_parser("evaluate", help="evaluate a model on a data-set folder (all images or its test split)")
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--model", help="model name in models/ or a model folder (default: the default model)")
    evaluate.add_argument("--split", choices=("all", "test"), default="all",
                          help="all: every image of the folder (warns about images the model has seen); "
                               "test: only the model's saved held-out test files of its training folder")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("-q", "--quiet", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)

    scenes = sub.add_parser("evaluate-scenes", help="evaluate detector + classifier on photos with boxed faces")
    scenes.add_argument("--data", required=True, help="folder with images/ and annotations/ (Pascal VOC) or labels/")
    scenes.add_argument("--model", help="model name in models/ or a model folder (default: the default model)")
    scenes.add_argument("--detector", default="centerface", choices=list(DETECTORS),
                        help="named detector setting: centerface is the product's, centerface-480 the one before "
                             "issue 19")
    scenes.add_argument("--iou", type=float, default=0.5, help="IoU at which a detection finds a face")
    scenes.add_argument("--map-class", action="append", default=[], metavar="NAME=CLASS",
                        help="count faces of annotation class NAME as CLASS (repeatable); other unknown "
                             "classes are ignored and counted")
    scenes.add_argument("--json", action="store_true", help="print one JSON object")
    scenes.add_argument("-q", "--quiet", action="store_true")
    scenes.set_defaults(func=cmd_evaluate_scenes)

    threshold = sub.add_parser("threshold", help="set a model's operating threshold, or choose it on the validation "
                                                 "scores its card stores (the default) or on your camera's faces (--on)")
    threshold.add_argument("--model", default=None, help="model name or folder (default: the default model)")
    threshold.add_argument("--value", type=float, default=None, help="set this threshold instead of choosing one")
    threshold.add_argument("--chosen-on", default=None, help="with --value: the data it was chosen on")
    threshold.add_argument("--on", metavar="FOLDER", default=None,
                           help="choose on this folder of labelled faces from your camera (class sub-folders) "
                                "instead of the validation scores")
    threshold.add_argument("--max-bare-called-masked", type=float, default=MAX_BARE_CALLED_MASKED,
                           help="choose the lowest threshold calling at most this fraction of the not-masked "
                                "faces masked, validation's or --on's (default %(default)s)")
    threshold.set_defaults(func=cmd_threshold)

    fingerprint = sub.add_parser("fingerprint-model", help="add the hashes of a model's train / val files to its "
                                 "folder (seen.json), so the overlap check needs no training data, and for a "
                                 "crop-set model what each held-out crop is (crops.json)")
    fingerprint.add_argument("model", help="model name in models/ or a model folder")
    fingerprint.add_argument("--data", help="its training folder (default: as its card records it); must hold "
                             "exactly the data it trained on")
    fingerprint.set_defaults(func=cmd_fingerprint_model)

    config = sub.add_parser("config", help="print every setting (MASKDET_* variables): its value, where it came "
                            "from and what it means")
    config.add_argument("--json", action="store_true", help="print one JSON list")
    config.set_defaults(func=cmd_config)

    models = sub.add_parser("models", help="list trained models and their headline metrics")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)

    datasets = sub.add_parser("datasets", help="public face-mask data sets: list them, get one verified")
    datasets_sub = datasets.add_subparsers(dest="datasets_command", required=True, metavar="ACTION")
    listing = datasets_sub.add_parser("list", help="the public sets, and the sets on this machine")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_datasets_list)
    getting = datasets_sub.add_parser("get", help="download a public set, check every file against its pinned "
                                                  "manifest and unpack it in maskdet's layout")
    getting.add_argument("name", help="a name from `datasets list`")
    getting.add_argument("--to", help="folder to unpack into (default: the data root when writable, else the "
                                      "user's data folder)")
    getting.add_argument("-q", "--quiet", action="store_true")
    getting.set_defaults(func=cmd_datasets_get)

    predict = sub.add_parser("predict", help="find faces in images and label each with_mask / without_mask")
    predict.add_argument("paths", nargs="+", metavar="PATH",
                         help="images, video clips (mp4, webm, mov, avi, mkv) or folders (recursed)")
    predict.add_argument("--model")
    predict.add_argument("--json", action="store_true", help="one JSON line per image or processed video frame")
    predict.add_argument("--every", type=int, default=1, metavar="N", help="video: process every N-th frame")
    predict.add_argument("--annotate", metavar="OUT.mp4", help="video: write the annotated clip (H.264 mp4) here")
    predict.add_argument("--whole-image", action="store_true", help="classify each full image as one face")
    predict.add_argument("--output", metavar="FILE", help="write the records to FILE (.jsonl, or .parquet)")
    predict.add_argument("--resume", action="store_true", help="skip the images FILE already holds, append the rest")
    predict.add_argument("--workers", type=int, default=1, help="decode and detect in N local worker processes")
    predict.add_argument("--batch-size", type=int, default=16, help="images whose faces are classified together")
    predict.add_argument("--engine", choices=["local", "processes", "ray"],
                         help="local (default), processes (default with --workers > 1) or ray (Ray Data)")
    predict.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to run on (default: start a local Ray)")
    predict.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(func=cmd_predict)

    export = sub.add_parser("export", help="export a model and the face detector to run with onnxruntime alone")
    export.add_argument("--model", help="model name in models/ or a model folder (default: the default model)")
    export.add_argument("--format", default="onnx", help="export format (onnx)")
    export.add_argument("--output", required=True, help="folder to create (classifier.onnx, detector.onnx, metadata.json)")
    export.add_argument("--force", action="store_true", help="replace OUTPUT if it is an earlier export")
    export.set_defaults(func=cmd_export)

    watch = sub.add_parser("watch", help="watch a clip, camera URL (RTSP / HTTP) or camera device: people tracked, "
                           "counted and alerted on; one line per event, then a summary")
    watch.add_argument("source", metavar="SOURCE", help="a video file, an rtsp:// or http(s):// URL, or a camera "
                       "device (/dev/video0 or 0)")
    watch.add_argument("--model")
    watch.add_argument("--json", action="store_true", help="one JSON line per event, then {\"summary\": ...}")
    watch.add_argument("--alert-after", type=float, default=3.0, metavar="S",
                       help="alert when a face without a mask stays in view S seconds (default 3)")
    watch.add_argument("--record", metavar="OUT.mp4", help="write the annotated stream here (H.264 mp4)")
    watch.add_argument("--privacy", nargs="?", const="blur", default="off", choices=["off", "blur", "no-pictures"],
                       help="blur every face in what is kept (--privacy alone), or keep no pictures at all")
    watch.add_argument("--realtime", action="store_true", help="play a file at its frame rate, like a live camera")
    watch.set_defaults(func=cmd_watch)

    bench = sub.add_parser("bench", help="measure classification, detection, pipeline and explanation speed")
    bench.add_argument("--model")
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        recover_interrupted_saves()  # once per process, under the models lock; listing never moves folders
        return args.func(args)
    except (CliError, DatasetError, CheckpointError, AssetUnavailableError, ImageDecodeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        refused = isinstance(exc, CheckpointError) and not isinstance(exc, ModelMissing)
        return EXIT_MODEL_REFUSED if refused else EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted; nothing was saved", file=sys.stderr)
        return EXIT_INTERRUPTED

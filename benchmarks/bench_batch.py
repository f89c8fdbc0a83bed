"""Batch scoring throughput: images/s of ``predict`` over a photo archive, per engine, with CPU use.

Usage: python benchmarks/bench_batch.py [--model NAME] [--engines local,processes,ray] [--limit N]
       [--scenes-only]

Runs the real CLI (``python -m maskdet predict FOLDERS --output FILE``) as a subprocess once per
engine over face-mask-4k plus synthetic-masks-2k (6,094 photos; ``--limit`` scores only the first N
files of a sorted list, copied by symbolic link into a temporary folder), then over the 96 photos of
scenes-dev (larger scenes, several faces). Prints images/s, the CPU utilisation of the run (CPU
seconds of the process tree per wall second, out of ``os.cpu_count()``) and the load average, which
on a shared machine says how far to trust the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from maskdet.batch.sources import iter_image_paths  # noqa: E402
from maskdet.settings import data_root  # noqa: E402

ENGINE_ARGS = {"local": ["--workers", "1"], "processes": ["--workers", "2"], "ray": ["--engine", "ray"]}


def tree_cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds of a process and its live children (Ray workers are children of the raylet)."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def run(engine: str, folders: list[Path], model: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "records.jsonl"
        command = [sys.executable, "-m", "maskdet", "predict", *map(str, folders), "--output", str(out), "--quiet",
                   *ENGINE_ARGS[engine], *(["--model", model] if model else [])]
        started = time.perf_counter()
        process = psutil.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        cpu = 0.0
        while process.poll() is None:
            cpu = max(cpu, tree_cpu_seconds(process))
            time.sleep(0.5)
        seconds = time.perf_counter() - started
        stderr = process.stderr.read()
        if process.returncode not in (0, 2):
            raise SystemExit(f"{engine} failed ({process.returncode}):\n{stderr}")
        images = out.read_bytes().count(b"\n")
    return {"engine": engine, "images": images, "seconds": seconds, "img_per_s": images / seconds,
            "cpu_util": cpu / seconds, "load": os.getloadavg()[0]}


def limited(folders: list[Path], limit: int, into: Path) -> list[Path]:
    """The first ``limit`` photos under ``folders`` as symbolic links in ``into`` (same order, same bytes)."""
    for index, path in enumerate(iter_image_paths(folders)):
        if index >= limit:
            break
        (into / f"{index:06d}{path.suffix}").symlink_to(path.resolve())
    return [into]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--engines", default="local,processes,ray")
    parser.add_argument("--limit", type=int, help="score only the first N photos of the archive")
    parser.add_argument("--scenes-only", action="store_true")
    args = parser.parse_args()
    root = data_root()
    engines = args.engines.split(",")
    print(f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'set':<14}{'engine':<11}{'images':>7}{'seconds':>9}{'img/s':>8}{'ms/img':>8}{'CPU used':>10}{'load':>6}")
    sets = [] if args.scenes_only else [("archive", [root / "face-mask-4k", root / "synthetic-masks-2k"])]
    sets.append(("scenes-dev", [root / "scenes-dev" / "images"]))
    with tempfile.TemporaryDirectory() as tmp:
        for name, folders in sets:
            if args.limit and name == "archive":
                folders = limited(folders, args.limit, Path(tmp))
            for engine in engines:
                r = run(engine, folders, args.model)
                print(f"{name:<14}{engine:<11}{r['images']:>7}{r['seconds']:>9.1f}{r['img_per_s']:>8.1f}"
                      f"{1000 / r['img_per_s']:>8.1f}{r['cpu_util']:>8.2f}/{os.cpu_count()}{r['load']:>6.1f}",
                      flush=True)


if __name__ == "__main__":
    main()

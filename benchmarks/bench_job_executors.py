"""What running a job costs per executor: seconds from submit to the first message and to the result.

Usage: python benchmarks/bench_job_executors.py [--model models/mlp] [--data DIR] [--runs 3]
                                                [--executors subprocess ray] [--main SCRIPT]

Each run is one real ``evaluate-folder`` job (the Compare page's unseen-data evaluation) through a
:class:`maskdet.jobs.JobRunner` with that executor, on a fresh cache folder (a real evaluation, no
cache hit). ``--main`` makes ``sys.modules["__main__"]`` that script while jobs start, as under
Streamlit (e.g. ``pages/compare.py``). Printed per executor: median seconds to the first message
(process start and imports) and to the finished result. Ray's
one-off start (a local Ray when ``$MASKDET_RAY_ADDRESS`` is unset) is printed apart. Other processes
distort the numbers: the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one_job(executor: str, model: str, data: str) -> tuple[float, float]:
    """(seconds to the first message, seconds to the result) of one evaluation on a fresh cache."""
    from maskdet.jobs import JobRunner, JobState

    os.environ["MASKDET_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-jobs-")
    runner = JobRunner(executor=executor)
    started = time.perf_counter()
    runner.submit("evaluate-folder", {"model": model, "data": data})
    first = None
    while (status := runner.snapshot()).active:
        if first is None and (status.progress or len(status.log) > 1):
            first = time.perf_counter() - started
        time.sleep(0.01)
    status = runner.wait()
    if status.state != JobState.FINISHED:
        raise SystemExit(f"{executor}: {status.state} {status.error}")
    done = time.perf_counter() - started
    return first or done, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "mlp"))
    parser.add_argument("--data", default=str(Path(os.environ.get("MASKDET_DATA_ROOT", ROOT.parent / "shared" / "datasets"))
                                              / "synthetic-masks-2k"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--executors", nargs="+", default=["subprocess", "ray"])
    parser.add_argument("--main", help="a script to stand as __main__ (as Streamlit's page script does)")
    args = parser.parse_args()
    if args.main:
        fake = types.ModuleType("__main__")
        fake.__file__ = str(Path(args.main).resolve())
        sys.modules["__main__"] = fake
    print(f"model {args.model}, data {args.data}, {args.runs} runs, load average {os.getloadavg()[0]:.2f}")
    for executor in args.executors:
        if executor == "ray":
            from maskdet.batch.engines import connect_ray

            started = time.perf_counter()
            connect_ray()
            print(f"ray: connected in {time.perf_counter() - started:.1f} s")
        times = [one_job(executor, args.model, args.data) for _ in range(args.runs)]
        firsts, totals = zip(*times, strict=True)
        print(f"{executor:>10}: first message {statistics.median(firsts):5.1f} s, result {statistics.median(totals):5.1f} s "
              f"(runs: {', '.join(f'{t:.1f}' for t in totals)})")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

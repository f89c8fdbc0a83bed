"""N visitors share one dashboard while its owner trains: memory, disk, page response, jobs, leaks.

Usage: python benchmarks/bench_visitors.py [--visitors 8] [--rounds 2] [--data ../shared/datasets/face-mask-4k]
                                           [--epochs 30] [--timeout 600]

Starts a real ``streamlit run streamlit_app.py`` listening on every interface (so it honestly treats every
browser as a visitor) with an owner secret, a fresh cache and a small data-set root cut from ``--data``.
Then, at once:

- the owner (one headless Chromium) signs in with the secret and trains an MLP for ``--epochs`` epochs;
- ``--visitors`` visitors (one headless Chromium each, a real Streamlit session each) each do ``--rounds``
  rounds of: open the Photo page and upload a photo (until its verdict shows), open the Dataset page and
  upload a zip of 20 photos (until its audit shows), open the Video page and upload a 2-second clip (until its
  result shows, or the job service queues or refuses it).

Printed: the server's peak and final resident memory (with its job processes), the cache's peak and final
disk use, the p50 / p95 / max time from opening a page to its first complete render and of each upload's
result, how many analyses were queued, refused or failed, whether the owner's training finished; then,
after every visitor's browser has closed and the session grace has passed, what is left: session folders,
job processes and the server's open descriptors (compared with before the visitors came). Loops are
bounded (rounds, timeouts); the load average is printed alongside (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "browser"))

from harness import (  # noqa: E402 - the browser tests' helpers
    choose_option,
    click_button,
    expand,
    chromium_binary,
    descriptor_kinds,
    fill_inputs,
    new_chromium,
    page_text,
    running_dashboard,
    server_pid as server_pid_of,
    set_input,
    wait_for,
    wait_idle,
)

from maskdet.workspace import tree_bytes  # noqa: E402

SECRET = "bench-visitors owner secret"
PER_CLASS = 40  # the owner's training set: 2 x 40 real photos
ZIP_PHOTOS = 10  # per class, in each visitor's zip
SETTLE_S = 40  # after the first 20 s, how long more the descriptor count may take to come back (then printed)


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    page_s: list[float] = field(default_factory=list)
    result_s: dict[str, list[float]] = field(default_factory=lambda: {"photo": [], "zip": [], "clip": []})
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def count(self, what: str) -> None:
        with self.lock:
            self.outcomes[what] = self.outcomes.get(what, 0) + 1


def browser():  # noqa: ANN201 - a Selenium driver
    driver = new_chromium(chromium_binary(), Path(tempfile.mkdtemp(prefix="bench-profile-")))
    driver.set_page_load_timeout(120)
    return driver


def wait_text(driver, predicate, timeout: float) -> str | None:  # noqa: ANN001
    """The page text once ``predicate`` holds; None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = page_text(driver)
        if predicate(text):
            return text
        time.sleep(0.3)
    return None


def open_page(driver, url: str, marker: str, tally: Tally, timeout: float) -> bool:  # noqa: ANN001
    started = time.perf_counter()
    driver.get(url)
    if wait_text(driver, lambda t: marker in t, timeout) is None:
        tally.errors.append(f"{url}: {marker!r} never shown")
        return False
    wait_idle(driver, timeout)
    with tally.lock:
        tally.page_s.append(time.perf_counter() - started)
    return True


def timed_upload(driver, path: Path, done, what: str, tally: Tally, timeout: float) -> str | None:  # noqa: ANN001
    started = time.perf_counter()
    wait_for(driver, "input[type=file]", timeout).send_keys(str(path))
    text = wait_text(driver, done, timeout)
    if text is None:
        tally.errors.append(f"{what}: no result within {timeout:.0f} s")
        return None
    with tally.lock:
        tally.result_s[what].append(time.perf_counter() - started)
    return text


def visitor(url: str, files: dict[str, Path], rounds: int, tally: Tally, timeout: float) -> None:
    driver = browser()
    try:
        for _ in range(rounds):
            if open_page(driver, f"{url}/photo", "Photos", tally, timeout):
                timed_upload(driver, files["photo"], lambda t: "Face 1" in t or "no face found" in t, "photo",
                             tally, timeout)
            if open_page(driver, f"{url}/dataset", "Zip archive", tally, timeout):
                text = timed_upload(driver, files["zip"], lambda t: "Readable images" in t or "Cannot use" in t,
                                    "zip", tally, timeout)
                tally.count("zip refused" if text and "Cannot use" in text else "zip audited")
            if open_page(driver, f"{url}/video", "Clip", tally, timeout):
                queued = threading.Event()

                def clip_done(text: str) -> bool:
                    if "waiting, number" in text:
                        queued.set()
                    return "frames analysed" in text or "Cannot analyse" in text

                text = timed_upload(driver, files["clip"], clip_done, "clip", tally, timeout)
                if queued.is_set():
                    tally.count("clip queued")
                if text is None:
                    tally.count("clip unfinished")
                elif "frames analysed" in text:
                    tally.count("clip analysed")
                elif "jobs waiting or running" in text:
                    tally.count("clip refused (quota/cap)")
                else:
                    tally.count("clip failed")
                    tally.errors.append(text[text.find("Cannot analyse"):][:200])
    except Exception as exc:  # noqa: BLE001 - a visitor's crash is a finding, printed
        tally.errors.append(f"visitor: {type(exc).__name__}: {exc}")
    finally:
        driver.quit()


def owner(url: str, epochs: int, tally: Tally, timeout: float, result: dict) -> None:
    driver = browser()
    try:
        driver.get(f"{url}/train")
        wait_text(driver, lambda t: "only the owner may train" in t, timeout)
        expand(driver, "Owner sign-in")
        set_input(driver, "Owner secret", SECRET)
        click_button(driver, "Sign in")
        if wait_text(driver, lambda t: "Start training" in t, timeout) is None:
            result["training"] = "could not sign in"
            return
        choose_option(driver, "Architecture", _mlp_title())
        fill_inputs(driver, {"Model name": "bench-owner-mlp", "Epochs": str(epochs)})
        started = time.perf_counter()
        click_button(driver, "Start training")
        text = wait_text(driver, lambda t: "Finished:" in t or "Training failed" in t, 4 * timeout)
        result["training"] = ("finished" if text and "Finished:" in text else "failed or unfinished") + \
            f" after {time.perf_counter() - started:.0f} s"
    except Exception as exc:  # noqa: BLE001
        result["training"] = f"error: {type(exc).__name__}: {exc}"
    finally:
        driver.quit()


def _mlp_title() -> str:
    from maskdet.zoo.architectures import get_spec

    return get_spec("mlp").title


def server_tree(pid: int) -> list[psutil.Process]:
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def rss_mb(pid: int) -> float:
    total = 0
    for process in server_tree(pid):
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def make_inputs(data: Path, work: Path) -> tuple[Path, dict[str, Path]]:
    """A data-set root for the owner, and the files a visitor uploads (a photo, a zip, a clip)."""
    root = work / "root" / "bench-faces"
    photos = {}
    for cls in ("with_mask", "without_mask"):
        files = sorted(p for p in (data / cls).glob("*.jpg") if "copy" not in p.name)
        if not files:
            raise SystemExit(f"no JPEG photos in {data / cls}: pass --data (a folder with with_mask/, without_mask/)")
        picked = files[:: max(1, len(files) // PER_CLASS)][:PER_CLASS]
        (root / cls).mkdir(parents=True)
        for path in picked:
            shutil.copy(path, root / cls / path.name)
        photos[cls] = picked
    archive = work / "visitor.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for cls, picked in photos.items():
            for path in picked[:ZIP_PHOTOS]:
                handle.write(path, f"{cls}/{path.name}")
    clip = work / "visitor.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-loop", "1", "-i", str(photos["without_mask"][0]),
                    "-t", "2", "-r", "10", "-vf", "scale=320:240", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(clip)], check=True)
    return root.parent, {"photo": photos["with_mask"][0], "zip": archive, "clip": clip}


def kinds_line(pid: int) -> str:
    """``descriptor_kinds`` as one line, most first: ``socket 12, pipe 4``."""
    return ", ".join(f"{k} {v}" for k, v in sorted(descriptor_kinds(pid).items(), key=lambda kv: -kv[1]))


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered):.1f} s, p95 {p95:.1f} s, max {ordered[-1]:.1f} s (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "face-mask-4k")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=600.0, help="per page or upload result (s)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-visitors-"))
    data_root, files = make_inputs(args.data, work)
    cache = work / "cache"
    shutil.copytree(REPO / "models", work / "models", ignore=shutil.ignore_patterns("*.onnx"))
    for name in ("detectors",):  # the face detector from this user's cache, when there (else fetched once)
        source = Path(os.environ.get("MASKDET_CACHE_DIR", "/nonexistent")) / name
        if source.is_dir():
            shutil.copytree(source, cache / name)
    env = {"MASKDET_CACHE_DIR": str(cache), "MASKDET_OWNER_SECRET": SECRET, "MASKDET_SESSION_GRACE_S": "5",
           "MASKDET_DEFAULT_MODEL": "mobilenet_v2", "MASKDET_MODELS_DIR": str(work / "models"),
           "MASKDET_DATA_ROOT": str(data_root)}
    tally, result = Tally(), {}
    peaks = {"rss": 0.0, "disk": 0}
    stop = threading.Event()
    with running_dashboard(env, work / "server.log", address="0.0.0.0") as url:
        server_pid = server_pid_of(url)

        def sample() -> None:
            while not stop.wait(1.0):
                peaks["rss"] = max(peaks["rss"], rss_mb(server_pid))
                peaks["disk"] = max(peaks["disk"], tree_bytes(cache))

        warm = browser()  # one page load, so the first visitor does not pay the imports alone
        warm.get(f"{url}/photo")
        wait_text(warm, lambda t: "Photos" in t, args.timeout)
        warm.quit()
        time.sleep(12)  # its session ends and is cleaned up
        fds_before = psutil.Process(server_pid).num_fds()
        kinds_before = kinds_line(server_pid)
        rss_before = rss_mb(server_pid)
        threading.Thread(target=sample, daemon=True).start()
        started = time.perf_counter()
        threads = [threading.Thread(target=owner, args=(url, args.epochs, tally, args.timeout, result))]
        threads += [threading.Thread(target=visitor, args=(url, files, args.rounds, tally, args.timeout))
                    for _ in range(args.visitors)]
        for thread in threads:
            thread.start()
            time.sleep(1.0)
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        stop.set()
        disk_end_sessions = tree_bytes(cache / "sessions")
        time.sleep(20)  # every browser is closed: the sessions end, their grace (5 s) passes, the watcher runs
        sessions = cache / "sessions"
        left = [p.name for p in sessions.iterdir() if p.name != "owner"] if sessions.is_dir() else []
        jobs_left = [p for p in server_tree(server_pid)[1:] if "maskdet.jobs" in " ".join(p.cmdline())]
        settle = time.monotonic() + SETTLE_S  # sessions that left last may still be within their grace
        while psutil.Process(server_pid).num_fds() > fds_before and time.monotonic() < settle:
            time.sleep(1.0)
        fds_after = psutil.Process(server_pid).num_fds()
        kinds_after = kinds_line(server_pid)
        alive = psutil.pid_exists(server_pid)

    print(f"{args.visitors} visitors x {args.rounds} rounds (photo, zip of {2 * ZIP_PHOTOS}, 2 s clip) while the "
          f"owner trains an MLP for {args.epochs} epochs; wall {wall:.0f} s; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"server up throughout: {alive}; memory (server + job processes): before {rss_before:,.0f} MB, "
          f"peak {peaks['rss']:,.0f} MB")
    print(f"disk (cache): peak {peaks['disk'] / 2**20:,.1f} MB; sessions' files when the visitors left "
          f"{disk_end_sessions / 2**20:,.1f} MB")
    print(f"page open to complete render: {percentiles(tally.page_s)}")
    for what, values in tally.result_s.items():
        print(f"{what} upload to result: {percentiles(values)}")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.outcomes.items())))
    print(f"owner's training: {result.get('training', 'not run')}")
    print(f"after the visitors left (+20 s, descriptors up to +{20 + SETTLE_S} s): visitor session folders left {len(left)}, job processes left "
          f"{len(jobs_left)}, server descriptors {fds_before} before -> {fds_after} after")
    print(f"  descriptors before: {kinds_before}\n  descriptors after:  {kinds_after}")
    if tally.errors:
        print(f"{len(tally.errors)} problems seen:")
        for line in tally.errors[:20]:
            print("  " + line.replace("\n", " ")[:300])
    print(f"server log: {work / 'server.log'} (kept)")


if __name__ == "__main__":
    main()

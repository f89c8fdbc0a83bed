"""Screenshots of every dashboard page, from the real dashboard in headless Chromium.

    python docs/screenshots.py                      # every page, into docs/images/
    python docs/screenshots.py --pages photo train  # some pages
    python docs/screenshots.py --out /tmp/look --width 1400 --keep-size   # full size, to look at a change

Starts ``streamlit run streamlit_app.py`` on a free loopback port (``tests/browser/harness.py``:
``running_dashboard``, the same start as the browser tests) with the repository's shipped models and an
empty data root, so the pages show what a fresh machine shows (the built-in sample); ``--data-root``
points it at real data sets instead. Each page is opened at its URL, given a moment to draw, and saved
as a small PNG (palette-quantised, scaled to ``--width``). Rerun it when the pages change.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "browser")]

from harness import (  # noqa: E402
    chromium_binary,
    choose_option,
    new_chromium,
    running_dashboard,
    wait_for_text,
    wait_idle,
)

PageAction = Callable[[object], None]


def _example_photo(driver) -> None:
    from maskdet.data.local import example_photos

    choose_option(driver, "…or try an example photo", example_photos()[0].name)
    wait_for_text(driver, lambda t: "Every face (" in t, 120, "the example photo's faces")


PAGES: dict[str, tuple[str, str, PageAction | None]] = {
    # name: (URL path, text that says the page is drawn, what to do before the picture)
    "home": ("", "Trained models", None),
    "dataset": ("dataset", "Split", None),
    "train": ("train", "Start training", None),
    "compare": ("compare", "Unseen data", None),
    "photo": ("photo", "try an example photo", _example_photo),
    "webcam": ("webcam", "Live readout", None),
    "video": ("video", "Video", None),
}
PAGE_TIMEOUT_S = 240


def save_small(png: bytes, target: Path, width: int | None) -> None:
    """Scale to ``width`` (None: as taken) and quantise to 256 colours: a page fits in ~100-200 kB."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".png") as raw:
        raw.write(png)
        raw.flush()
        image = Image.open(raw.name).convert("RGB")
        if width and image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
        image.quantize(256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", nargs="*", choices=list(PAGES), default=list(PAGES))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--width", type=int, default=1000, help="width of the saved pictures (px)")
    parser.add_argument("--keep-size", action="store_true", help="save as taken, not scaled")
    parser.add_argument("--data-root", type=Path, help="data sets to show (default: none, the built-in sample)")
    args = parser.parse_args()

    binary = chromium_binary()
    if binary is None:
        raise SystemExit("headless Chromium not found: apt-get install chromium chromium-driver")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        environment = {"MASKDET_DATA_ROOT": str(args.data_root or scratch / "data"),
                       "MASKDET_MODELS_DIR": str(REPO / "models"), "XDG_DATA_HOME": str(scratch / "xdg")}
        with running_dashboard(environment, scratch / "server.log") as url:
            driver = new_chromium(binary, scratch / "profile")
            try:
                for name in args.pages:
                    path, ready, action = PAGES[name]
                    driver.get(f"{url}/{path}")
                    wait_for_text(driver, lambda t, ready=ready: ready in t, PAGE_TIMEOUT_S, f"the {name} page")
                    if action:
                        action(driver)
                    wait_idle(driver)
                    time.sleep(1.0)  # charts and images fade in
                    target = args.out / f"{name}.png"
                    save_small(driver.get_screenshot_as_png(), target, None if args.keep_size else args.width)
                    print(f"{target} ({target.stat().st_size // 1024} kB)")
            finally:
                driver.quit()


if __name__ == "__main__":
    main()

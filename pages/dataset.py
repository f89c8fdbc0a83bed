"""Dataset page: explore and audit a data set before training on it.

Shows class balance, sample images, image sizes and formats, unreadable files,
near-duplicates and label conflicts, and the split training will use. All analysis is
:func:`maskdet.data.audit.audit_catalog`; this page only lays it out. The audit is cached by
the folder's fingerprint (file names, sizes and modification times), so it is recomputed
only when the folder changes; the first scan shows a progress bar.
"""

from __future__ import annotations

import logging
import time

import pandas as pd
import plotly.express as px
import streamlit as st

from maskdet.data.audit import (DEFAULT_SPLIT_SEED, SHORTCUT_FOLDS, SHORTCUT_WARNING, DatasetAudit, NumericStats,
                                audit_catalog, sample_files)
from maskdet.data.datasets import DatasetError, DatasetScan, FileRecord, build_catalog, scan_dataset
from maskdet.settings import KNOWN_CLASSES
from maskdet.data.split import SPLIT_NAMES
from ui.dataset_picker import choose_dataset
from ui.markup import code, plain
from ui.figures import with_room_for_the_toolbar
from ui.public_datasets import get_public_dataset
from ui.shell import setup_page
from ui.tables import percent, styled
from ui.thumbnails import thumbnail

setup_page("Dataset")

logger = logging.getLogger(__name__)

SAMPLES_PER_CLASS = 8
SKIPPED_SHOWN = 5  # odd entries (pipes, devices, link loops) named in the warning; the count covers all
GRID_COLUMNS = 8
MAX_GROUP_COLUMNS = 6  # thumbnails per row in a duplicate group; bigger groups wrap
DEFAULT_GROUPS_SHOWN = 8
MAX_GROUPS_SHOWN = 60  # thumbnails of more groups at once make the page slow; the table lists them all
AUDIT_CACHE_ENTRIES = 8
PROGRESS_STEPS = 20
SAMPLE_SEED_KEY = "dataset_sample_seed"
CLASS_COLORS = {"with_mask": "#2e9e5b", "without_mask": "#d9534f"}


@st.cache_data(show_spinner=False, max_entries=AUDIT_CACHE_ENTRIES)
def _audit(root: str, fingerprint: str, seed: int, _scan: DatasetScan) -> DatasetAudit:
    """Catalogue (with a progress bar) and audit ``_scan``; keyed by folder, fingerprint and seed only."""
    total = len(_scan.samples)
    bar = st.progress(0.0, text=f"Reading {total:,} files (first visit of this folder version)…")
    shown = -1

    def report(done: int, total: int) -> None:
        nonlocal shown
        step = PROGRESS_STEPS * done // max(total, 1)
        if step != shown:  # few updates: the cache entry stores them and replays them on every hit
            shown = step
            bar.progress(step / PROGRESS_STEPS, text=f"Reading files: {done:,} / {total:,}")

    start = time.perf_counter()
    try:
        catalog = build_catalog(_scan, progress=report)
    finally:
        bar.empty()
    audit = audit_catalog(catalog, _scan, seed=seed)
    logger.info("audited %s (%d files) in %.1f s", root, total, time.perf_counter() - start)
    return audit


def _show_thumbnails(audit: DatasetAudit, records: list[FileRecord], columns: int, label: bool = False) -> None:
    """A row-wrapped grid of thumbnails captioned with file names (and classes when ``label``)."""
    for start in range(0, len(records), columns):
        for column, record in zip(st.columns(columns), records[start : start + columns], strict=False):
            name = record.relpath.rsplit("/", 1)[-1]
            caption = f"{KNOWN_CLASSES[record.label]} · {name}" if label else name
            data = thumbnail(str(audit.path(record)), audit.fingerprint)
            if data is None:
                column.caption(f"{caption} (no longer readable)")
            else:
                column.image(data, caption=caption)


def _summary(audit: DatasetAudit) -> None:
    st.subheader(audit.root.name)
    st.caption(f"`{audit.root}` · fingerprint `{audit.fingerprint}`")
    skipped = audit.catalog.skipped
    if skipped:
        shown = "; ".join(f"{code(relpath)} ({plain(reason)})" for relpath, reason in skipped[:SKIPPED_SHOWN])
        more = f" and {len(skipped) - SKIPPED_SHOWN} more" if len(skipped) > SKIPPED_SHOWN else ""
        st.warning(f"{len(skipped):,} entries skipped, never opened: {shown}{more}.")
    cols = st.columns(5)
    cols[0].metric("Files", f"{audit.total_files:,}")
    cols[1].metric("Readable images", f"{audit.total_readable:,}")
    cols[2].metric("Unreadable", f"{len(audit.unreadable):,}")
    cols[3].metric("Near-duplicate groups", f"{len(audit.duplicates.groups):,}")
    cols[4].metric("Label conflicts", f"{len(audit.duplicates.conflicts):,}")
    counts = ", ".join(f"{name}: {count:,}" for name, count in audit.counts.items())
    if audit.missing_classes:
        st.warning(
            f"No readable images for {', '.join(audit.missing_classes)} ({counts}): training needs images of "
            "both classes, with_mask and without_mask."
        )
    elif audit.imbalanced:
        st.warning(
            f"Classes are unbalanced: the largest is {audit.imbalance_ratio:.1f}× the smallest ({counts}). "
            "Accuracy will flatter a model that favours the big class; compare per-class recall."
        )
    else:
        st.success(f"Classes are balanced (largest / smallest = {audit.imbalance_ratio:.2f}; {counts}).")
    _shortcuts(audit)


def _shortcuts(audit: DatasetAudit) -> None:
    """A warning per file property that alone predicts the class, and how well each one does."""
    for shortcut in audit.warned_shortcuts:
        typical = ", ".join(f"{name} {value}" for name, value in shortcut.typical.items())
        st.warning(f"**The {shortcut.name} alone predicts the class** ({percent(shortcut.balanced_accuracy)} "
                   f"balanced accuracy, {SHORTCUT_FOLDS}-fold cross-validated; typical: {typical}). A model can "
                   "learn it instead of the mask and fail on photos where it does not hold: check that the classes "
                   "were cropped and saved the same way.", icon="⚠️")
    if audit.shortcuts:
        with st.expander("How well each file property alone predicts the class"):
            st.caption("One threshold (or one value against the rest) per property, a depth-1 decision tree "
                       f"cross-validated over {SHORTCUT_FOLDS} folds; 50% balanced accuracy is chance, "
                       f"{percent(SHORTCUT_WARNING)} and above is flagged.")
            frame = pd.DataFrame([{"property": s.name, "balanced accuracy": s.balanced_accuracy,
                                   **{f"typical {name}": value for name, value in s.typical.items()},
                                   "best single split": s.rule} for s in audit.shortcuts])
            st.dataframe(styled(frame, text_columns=[c for c in frame.columns if c != "balanced accuracy"]),
                         hide_index=True, key="dataset_shortcuts")


def _classes_tab(audit: DatasetAudit) -> None:
    frame = pd.DataFrame(
        {
            "class": list(audit.classes),
            "readable images": [audit.counts[name] for name in audit.classes],
            "files": [audit.files_per_class[name] for name in audit.classes],
            "folders": [", ".join(audit.class_folders[name]) or "—" for name in audit.classes],
        }
    )
    figure = px.bar(
        frame, x="class", y="readable images", color="class", color_discrete_map=CLASS_COLORS, text_auto=True
    )
    figure.update_layout(showlegend=False, height=320, margin={"t": 10, "b": 10})
    st.plotly_chart(with_room_for_the_toolbar(figure))
    st.dataframe(frame, hide_index=True)


def _resample() -> None:
    st.session_state[SAMPLE_SEED_KEY] += 1


def _samples_tab(audit: DatasetAudit) -> None:
    st.session_state.setdefault(SAMPLE_SEED_KEY, 0)
    st.button(
        "Resample", key="dataset_resample", icon="🔀", help="Draw other images of each class", on_click=_resample
    )
    for name, records in sample_files(audit, SAMPLES_PER_CLASS, st.session_state[SAMPLE_SEED_KEY]).items():
        st.markdown(f"**{name}** · {audit.counts[name]:,} images")
        if records:
            _show_thumbnails(audit, records, GRID_COLUMNS)
        else:
            st.caption("No readable images in this class.")


def _stats_row(name: str, stats: NumericStats) -> dict[str, object]:
    return {
        "": name,
        "min": stats.minimum,
        "5 %": stats.p5,
        "median": stats.median,
        "mean": stats.mean,
        "95 %": stats.p95,
        "max": stats.maximum,
    }


def _sizes_tab(audit: DatasetAudit) -> None:
    if audit.width is None or audit.height is None or audit.aspect is None:
        st.info("No readable images: nothing to measure.")
        return
    readable = audit.catalog.readable
    sizes = pd.DataFrame(
        {
            "class": [KNOWN_CLASSES[r.label] for r in readable],
            "width": [r.width for r in readable],
            "height": [r.height for r in readable],
        }
    )
    sizes["aspect ratio (w/h)"] = sizes["width"] / sizes["height"]
    left, right = st.columns(2)
    with left:
        long = sizes.melt(id_vars="class", value_vars=["width", "height"], var_name="side", value_name="pixels")
        figure = px.histogram(long, x="pixels", color="side", barmode="overlay", nbins=60, title="Image size")
        figure.update_layout(height=340, margin={"b": 10})
        st.plotly_chart(with_room_for_the_toolbar(figure))
    with right:
        figure = px.histogram(
            sizes,
            x="aspect ratio (w/h)",
            color="class",
            color_discrete_map=CLASS_COLORS,
            nbins=60,
            barmode="overlay",
            title="Aspect ratio",
        )
        figure.update_layout(height=340, margin={"b": 10})
        st.plotly_chart(with_room_for_the_toolbar(figure))
    stats = [_stats_row("width (px)", audit.width), _stats_row("height (px)", audit.height)]
    stats.append(_stats_row("aspect ratio", audit.aspect))
    number = st.column_config.NumberColumn(format="%.2f")
    decimals = dict.fromkeys(("5 %", "median", "mean", "95 %"), number)
    st.dataframe(pd.DataFrame(stats).set_index(""), column_config=decimals)
    left, right = st.columns(2)
    left.markdown("**File formats** (decoded, not the extension)")
    left.dataframe(pd.DataFrame(audit.formats.items(), columns=["format", "images"]), hide_index=True)
    right.markdown("**Colour modes** (as stored; all are converted to RGB)")
    right.dataframe(pd.DataFrame(audit.modes.items(), columns=["mode", "images"]), hide_index=True)
    if audit.animated:
        st.caption(f"{audit.animated:,} animated images: only the first frame is used.")


def _unreadable_tab(audit: DatasetAudit) -> None:
    if not audit.unreadable:
        st.success(f"All {audit.total_files:,} files decode.")
        return
    st.warning(f"{len(audit.unreadable):,} files cannot be decoded; training and evaluation skip them.")
    frame = pd.DataFrame(
        {
            "file": [r.relpath for r in audit.unreadable],
            "class": [KNOWN_CLASSES[r.label] for r in audit.unreadable],
            "bytes": [r.bytes for r in audit.unreadable],
            "reason": [r.error for r in audit.unreadable],
        }
    )
    st.dataframe(frame, hide_index=True)


def _is_conflict(group: list[FileRecord]) -> bool:
    return len({r.label for r in group}) > 1


def _duplicates_tab(audit: DatasetAudit) -> None:
    report = audit.duplicates
    if not report.groups:
        st.success("No near-duplicate images found.")
        return
    st.markdown(
        f"**{len(report.groups):,}** groups of near-identical images (**{report.duplicate_images:,}** copies beyond "
        f"the first of each). Training keeps each group inside one split so copies cannot leak into the test set."
    )
    if report.conflicts:
        st.error(
            f"{len(report.conflicts):,} groups are filed under both classes (label conflicts, "
            f"{sum(len(g) for g in report.conflicts):,} images): they are left out of every split."
        )
    ordered = sorted(report.groups, key=lambda g: (not _is_conflict(g), -len(g)))
    shown = 1
    if len(ordered) > 1:
        shown = st.slider(
            "Groups shown (label conflicts first, then the largest)",
            1,
            min(len(ordered), MAX_GROUPS_SHOWN),
            min(DEFAULT_GROUPS_SHOWN, len(ordered)),
            key="dataset_groups_shown",
        )
    for number, group in enumerate(ordered[:shown], start=1):
        kind = "label conflict" if _is_conflict(group) else "near-duplicates"
        st.markdown(f"**Group {number}** · {len(group)} images · {kind}")
        _show_thumbnails(audit, group, min(len(group), MAX_GROUP_COLUMNS), label=True)
    with st.expander("All groups as a table"):
        rows = [
            {"group": number, "file": r.relpath, "class": KNOWN_CLASSES[r.label], "conflict": _is_conflict(g)}
            for number, g in enumerate(ordered, start=1)
            for r in g
        ]
        st.dataframe(pd.DataFrame(rows), hide_index=True)


def _split_tab(audit: DatasetAudit) -> None:
    counts = audit.split_counts
    rows = []
    for name in SPLIT_NAMES:
        total = sum(counts[name].values())
        rows.append({"split": name, **counts[name], "total": total})
    frame = pd.DataFrame(rows)
    grand = max(int(frame["total"].sum()), 1)
    frame["share"] = (frame["total"] / grand).map(lambda share: f"{share:.0%}")
    st.markdown(
        f"The split training uses (seed {audit.split.seed}, fractions "
        f"{' / '.join(f'{f:.0%}' for f in audit.split.fractions)}), stratified by class, whole near-duplicate groups "
        "assigned together."
    )
    st.dataframe(frame, hide_index=True)
    if audit.split.excluded_conflicts:
        st.caption(f"{len(audit.split.excluded_conflicts):,} images of label-conflict groups are in no split.")
    if audit.split_leaks:
        st.error(f"{len(audit.split_leaks):,} near-duplicate groups cross splits: test images leak into training.")
        st.dataframe(
            pd.DataFrame([{"file": f, "split": p} for leak in audit.split_leaks for f, p in leak.placements.items()]),
            hide_index=True,
        )
    elif audit.duplicates.groups:
        st.success(f"No near-duplicate group crosses splits ({len(audit.duplicates.groups):,} groups checked).")
    else:
        st.success("No near-duplicate groups, so none can cross splits.")
    if any(counts[name][cls] == 0 for name in SPLIT_NAMES for cls in audit.classes) and audit.total_readable:
        st.warning(
            "Some split has no image of some class: the data set is too small or one-sided for a meaningful "
            "train / val / test evaluation."
        )


st.title("Dataset")
st.caption(
    "Explore and audit a data set before training on it: balance, samples, sizes, unreadable files, "
    "near-duplicates, label conflicts and the train / val / test split."
)

get_public_dataset("dataset")
root = choose_dataset("dataset")
if root is None:
    st.info("Choose a data set to audit.")
    st.stop()
try:
    scan = scan_dataset(root)
except (DatasetError, OSError) as exc:
    st.error(f"Cannot audit this folder: {exc}")
    st.stop()

audit = _audit(str(scan.root), scan.fingerprint, DEFAULT_SPLIT_SEED, scan)
_summary(audit)
if audit.total_readable == 0:
    st.error(f"None of the {audit.total_files:,} files could be decoded as an image.")
    _unreadable_tab(audit)
    st.stop()

tabs = st.tabs(
    [
        "Classes",
        "Samples",
        "Sizes & formats",
        f"Unreadable ({len(audit.unreadable):,})",
        f"Duplicates ({len(audit.duplicates.groups):,})",
        "Split",
    ]
)
with tabs[0]:
    _classes_tab(audit)
with tabs[1]:
    _samples_tab(audit)
with tabs[2]:
    _sizes_tab(audit)
with tabs[3]:
    _unreadable_tab(audit)
with tabs[4]:
    _duplicates_tab(audit)
with tabs[5]:
    _split_tab(audit)

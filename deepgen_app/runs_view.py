"""The Runs page's parts: the new-run form, uploads, the run table and curves."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from deepgen_core import jobs
from deepgen_core.data import DATASET_NAMES, load_user_file
from deepgen_core.dbn import DBNConfig
from deepgen_core.finetune import FinetuneConfig
from deepgen_core.runs import (
    FINETUNE_STAGES,
    FINETUNED,
    Run,
    RunConfig,
    check_run_name,
    read_jsonl,
)
from deepgen_core.training import LR_SCHEDULES, RBMTrainingConfig

from . import context, ui
from .presets import PRESETS, parse_layers

UPLOADS = "uploads"
DEFAULTS = RBMTrainingConfig()


# The new-run form --------------------------------------------------------------


def dataset_choices(runs_dir: Path) -> list[str]:
    """Built-in datasets, then files uploaded into the runs folder."""
    uploads = runs_dir / UPLOADS
    files = sorted(str(path) for path in uploads.glob("*") if path.is_file())
    return [*DATASET_NAMES, *files]


def _next_run_name(runs_dir: Path, stem: str) -> str:
    existing = (
        {path.name for path in runs_dir.glob("*")} if runs_dir.exists() else set()
    )
    for number in range(1, 1000):
        name = f"{stem}-{number}"
        if name not in existing:
            return name
    return stem


def new_run_form(runs_dir: Path) -> None:
    """Preset choice and a form with every hyperparameter; submits a train job."""
    preset_key = st.selectbox(
        "Preset",
        list(PRESETS),
        format_func=lambda key: PRESETS[key].title,
        key="preset",
    )
    preset = PRESETS[preset_key]
    st.caption(preset.summary)
    with st.form(f"new-run-{preset_key}"):
        name = st.text_input("Run name", _next_run_name(runs_dir, preset_key))
        dataset = st.selectbox(
            "Dataset",
            dataset_choices(runs_dir),
            format_func=lambda value: Path(value).name,
            help="mnist-10k ships with deepgen; mnist and fashion-mnist need "
            "`deepgen data download NAME` first; uploads appear here too.",
        )
        layers = st.text_input(
            "Hidden layers",
            preset.layers,
            help="Sizes from the bottom up, e.g. 500,500.",
        )
        left, middle, right = st.columns(3)
        labels = left.checkbox(
            "Label units",
            preset.labels,
            help="Join 10 softmax label units to the top RBM, so it can generate a "
            "chosen class (needs two or more hidden layers).",
        )
        persistent = middle.checkbox(
            "Persistent CD",
            preset.persistent,
            help="Keep the negative Gibbs chains between batches (PCD) instead of "
            "restarting them at the data (CD-k).",
        )
        finetune = right.checkbox(
            "Fine-tune afterwards",
            preset.finetune,
            help="Then train the whole net on the labels by backprop into a "
            "'finetuned' stage.",
        )
        left, middle, right = st.columns(3)
        epochs = left.number_input(
            "Epochs per layer", 1, 1000, preset.epochs, help="Passes over the data."
        )
        learning_rate = middle.number_input(
            "Learning rate",
            min_value=0.0,
            value=preset.learning_rate,
            format="%.4f",
            placeholder="auto: 0.1 (Bernoulli), 0.01 (Gaussian)",
            help="Step size of each CD update; empty picks the guide's default.",
        )
        batch_size = right.number_input(
            "Batch size", 1, 10_000, DEFAULTS.batch_size, help="Rows per CD update."
        )
        left, middle, right = st.columns(3)
        cd_k = left.number_input(
            "CD steps k", 1, 1000, DEFAULTS.cd_k, help="Gibbs steps per negative phase."
        )
        initial_momentum = middle.number_input(
            "Initial momentum",
            0.0,
            0.99,
            preset.initial_momentum,
            help="Used for the first epochs, while the weights change fast.",
        )
        momentum = right.number_input(
            "Final momentum", 0.0, 0.99, preset.momentum, help="Used afterwards."
        )
        left, middle, right = st.columns(3)
        switch_epoch = left.number_input(
            "Momentum switch epoch",
            1,
            1000,
            DEFAULTS.momentum_switch_epoch,
            help="Last epoch with the initial momentum.",
        )
        weight_decay = middle.number_input(
            "Weight decay",
            0.0,
            1.0,
            DEFAULTS.weight_decay,
            format="%.5f",
            help="L2 cost on the weights.",
        )
        sparsity = right.number_input(
            "Sparsity target",
            min_value=0.0,
            max_value=0.99,
            value=None,
            placeholder="off",
            help="Mean hidden activation to aim for; empty turns the penalty off.",
        )
        left, middle, right = st.columns(3)
        lr_schedule = left.selectbox(
            "Learning-rate schedule",
            LR_SCHEDULES,
            index=LR_SCHEDULES.index(preset.lr_schedule),
            help="constant, or linear: the rate falls by equal steps to "
            "1/epochs of its value in the last epoch, which lets persistent CD "
            "settle.",
        )
        left, middle, right = st.columns(3)
        visible_type = left.selectbox(
            "Visible units",
            ["bernoulli", "gaussian"],
            help="Bernoulli for intensities in [0, 1]; Gaussian for standardised "
            "real values.",
        )
        seed = middle.number_input("Seed", 0, 2**31 - 1, 0, help="Same seed, same net.")
        device = right.selectbox(
            "Device", ["auto", "cpu", "cuda"], help="auto uses a GPU when present."
        )
        drop_last = st.checkbox(
            "Drop the last partial batch",
            help="Needed when the number of training rows is not a multiple of "
            "the batch size; the few rows left over are skipped in each epoch.",
        )
        finetune_epochs = st.number_input(
            "Fine-tuning epochs",
            1,
            1000,
            preset.finetune_epochs,
            help="At most this many; it stops early when validation accuracy stalls.",
        )
        submitted = st.form_submit_button("Start training", type="primary")
    if not submitted:
        return
    with ui.reported_errors("start the run"):
        rbm = RBMTrainingConfig(
            epochs=int(epochs),
            learning_rate=learning_rate or None,
            lr_schedule=lr_schedule,
            batch_size=int(batch_size),
            cd_k=int(cd_k),
            persistent=persistent,
            initial_momentum=initial_momentum,
            momentum=momentum,
            momentum_switch_epoch=int(switch_epoch),
            weight_decay=weight_decay,
            sparsity_target=sparsity or None,
            drop_last=drop_last,
        )
        dbn = DBNConfig(
            parse_layers(layers),
            labels=labels,
            visible_type=visible_type,
            seed=int(seed),
            rbm=rbm,
        )
        params = {
            "out": str(runs_dir / check_run_name(name.strip())),
            "config": RunConfig(dataset, dbn, device).to_dict(),
        }
        if finetune:
            params["finetune"] = FinetuneConfig(
                epochs=int(finetune_epochs),
                patience=min(FinetuneConfig.patience, int(finetune_epochs)),
            ).to_dict()
        job = jobs.submit("train", params, runs_dir)
        context.choose_run(name.strip())
        st.session_state.pop("manage_run", None)  # show the new run once it exists
        st.success(f"Training queued as job {job.id}; progress is shown above.")


# Uploads ----------------------------------------------------------------------


def upload_form(runs_dir: Path) -> None:
    """Accept an NPZ or CSV dataset, check it with the core's rules, and keep it."""
    limit = st.get_option("server.maxUploadSize")
    st.caption(
        f"NPZ with arrays x_train and y_train (optionally x_test, y_test), or CSV "
        f"with one row per example; labels are read from a header column named "
        f"'label', and a CSV without one is unlabelled. Up to {limit} MB."
    )
    upload = st.file_uploader("Dataset file", type=["npz", "csv"], key="upload")
    if upload is None:
        return

    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(upload.name).stem).strip("-.")
    suffix = Path(upload.name).suffix.lower()
    target = runs_dir / UPLOADS / f"{stem or 'dataset'}{suffix}"
    content = upload.getvalue()
    if target.exists() and target.read_bytes() == content:
        st.success(f"{target.name} is ready; choose it in the new-run form.")
        return
    if target.exists():
        st.error(
            f"Could not use {upload.name}: a different file named {target.name} was "
            "uploaded before. Rename your file and upload it again."
        )
        return

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    partial.write_bytes(content)
    try:
        with ui.reported_errors(f"use {upload.name}"):
            dataset = load_user_file(partial.rename(target))
            labels = (
                f"{dataset.n_classes} classes"
                if dataset.y_train is not None
                else "no labels (add a header column named 'label' for them)"
            )
            st.success(
                f"{target.name}: {len(dataset.x_train)} training and "
                f"{len(dataset.x_test)} held-out rows of {dataset.n_features} "
                f"features, {labels}. Choose it in the new-run form."
            )
            return
        target.unlink(missing_ok=True)
    finally:
        partial.unlink(missing_ok=True)


# The run table and curves -----------------------------------------------------


def stopped_train_job(run: Run) -> jobs.Job | None:
    """Return the run's latest training job if it was cancelled or failed."""
    path = str(run.path.resolve())
    for job in jobs.list(context.runs_dir()):
        if job.run_dir == path and job.kind == "train":
            return job if job.state in ("cancelled", "failed") else None
    return None


def run_status(run: Run) -> str:
    job = context.unfinished_job(run)
    if job is not None:
        return f"{job.kind} {job.state}"
    stopped = stopped_train_job(run)
    if stopped is not None and not run.stages():
        return stopped.state
    return ", ".join(run.stages()) or "unfinished"


def run_row(run: Run) -> dict:
    """Build the run's row of the run table."""
    config = run.config
    figures = run.metrics()
    row = {
        "run": run.name,
        "status": run_status(run),
        "dataset": Path(config.dataset).name,
        "layers": "-".join(str(n) for n in config.dbn.layers),
        "labels": config.dbn.labels,
        "epochs": config.dbn.rbm.epochs,
        "recon error": round(figures[-1]["recon_error"], 4) if figures else None,
        "fine-tuned accuracy": None,
    }
    if FINETUNED in run.stages():
        accuracy = run.stage_info(FINETUNED)["info"].get("test_accuracy")
        row["fine-tuned accuracy"] = round(accuracy, 4) if accuracy else None
    return row


CURVES = {
    "recon_error": "Reconstruction error",
    "free_energy_gap": "Free-energy gap (held-out minus train)",
}


def training_curves(run_path: str, place: str) -> None:
    """Draw reconstruction error and free-energy gap by epoch, one line per layer.

    ``place`` distinguishes the copies drawn on one page, because Streamlit
    requires each chart key to be unique.
    """
    figures = read_jsonl(Path(run_path) / "metrics.jsonl")
    if not figures:
        return
    frame = pd.DataFrame(figures)
    frame["layer"] = frame["layer"].astype(str)
    tick = 1 if frame["epoch"].max() < 15 else None
    for column, (name, title) in zip(st.columns(2), CURVES.items()):
        if name not in frame:
            continue
        figure = px.line(frame, x="epoch", y=name, color="layer", markers=True)
        column.plotly_chart(
            figure.update_layout(title=title, height=260).update_xaxes(dtick=tick),
            width="stretch",
            key=f"{name}-{place}-{run_path}",
        )


def finetune_warnings(run: Run) -> dict[str, str]:
    """Collect the warning saved with each fine-tuned stage, by stage name."""
    stages = set(run.stages())
    found = {}
    for stage in FINETUNE_STAGES.values():
        if stage in stages:
            warning = run.stage_info(stage)["info"].get("warning")
            if warning:
                found[stage] = warning
    return found


def finetune_figures(run: Run) -> pd.DataFrame | None:
    """Validation accuracy by epoch of the fine-tuned stage, if there is one."""
    if FINETUNED not in run.stages():
        return None
    history = read_jsonl(run.stage_dir(FINETUNED) / "metrics.jsonl")
    rows = [
        {"epoch": row["epoch"], "validation_accuracy": row["valid_accuracy"]}
        for row in history
        if row.get("phase") == "select"
    ]
    return pd.DataFrame(rows) if rows else None

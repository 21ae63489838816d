"""Test log-likelihoods of 500-unit RBMs trained with CD-1, CD-3 and CD-25 on MNIST.

Run from the repository root, with the MNIST IDX files in ``DEEPGEN_DATA_DIR``::

    python -m experiments.rbm_likelihood
    python -m experiments.rbm_likelihood --quick

Salakhutdinov and Murray (2008) estimated the average test log-probability
of such RBMs by AIS: -125.53 nats for CD-1, -105.50 for CD-3 and -86.34 for
CD-25, and about -86.22 for a DBN. This command trains the three RBMs with
``experiments.rbm_model`` (one command each, recorded in its own JSON file
beside the results) and gathers their figures. The paper does not give the
number of epochs; the settings here are those found to match it, listed in
``MODELS``. CD-k's gradient is biased, and its bias shrinks as k grows, so
the likelihood is expected to rise from CD-1 to CD-25.

A model whose JSON file and weights were written by the same command is not
trained again. The weights stay beside the JSON files, so ``--runs-dir`` is
not used.
"""

from __future__ import annotations

from pathlib import Path

from . import rbm_model
from .common import Experiment, base_parser, load_results, run_command

NAME = "rbm_likelihood"
DBN_ANCHOR = -86.22
MODELS = {
    "cd1": ["--cd-k", "1", "--epochs", "30"],
    "cd3": ["--cd-k", "3", "--epochs", "30"],
    "cd25": [
        "--cd-k",
        "25",
        "--cd-schedule",
        "ramp",
        "--ramp-epochs",
        "3",
        "--epochs",
        "100",
        "--reverse-burn-in",
        "10000",
    ],
}
QUICK_MODELS = {
    "cd1": ["--cd-k", "1", "--epochs", "2"],
    "cd3": ["--cd-k", "3", "--epochs", "2"],
    "cd25": [
        "--cd-k",
        "25",
        "--cd-schedule",
        "ramp",
        "--ramp-epochs",
        "1",
        "--epochs",
        "2",
    ],
}
QUICK_AIS = ["--ais-runs", "20", "--ais-betas", "1000", "--reverse-burn-in", "200"]
KEPT = (
    "test_log_likelihood",
    "test_log_likelihood_reverse",
    "train_log_likelihood",
    "log_z",
    "log_z_stderr",
    "log_z_reverse",
    "log_z_reverse_stderr",
    "anchor",
    "difference",
    "tolerance",
    "within_tolerance",
    "ais_runs",
    "ais_n_betas",
    "n_test",
)


def made_by(out: Path, command: str) -> bool:
    """Tell whether ``out`` contains the results of ``command``, with its weights."""
    if not (out.is_file() and out.with_suffix(".safetensors").is_file()):
        return False
    if load_results(NAME, out.parent, out.name).get("command") != command:
        return False
    print(f"reusing {out}, made by the same command", flush=True)
    return True


def main(argv=None) -> None:
    parser = base_parser(NAME, __doc__)
    args = parser.parse_args(argv)
    experiment = Experiment(NAME, args)
    models = QUICK_MODELS if args.quick else MODELS
    common = ["--seed", str(args.seed), "--device", str(experiment.device)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    if args.quick:
        common += ["--quick", *QUICK_AIS]
    figures, commands = {}, {}
    for name, model_args in models.items():
        epochs = model_args[model_args.index("--epochs") + 1]
        out = experiment.out_dir / f"{name}-{epochs}-epochs.json"
        if out.is_relative_to(Path.cwd()):
            # Keeps the recorded command free of this machine's folders.
            out = out.relative_to(Path.cwd())
        model_argv = [*model_args, *common, "--out", str(out)]
        if not made_by(out, rbm_model.command_line(model_argv)):
            with experiment.timed(name):
                rbm_model.main(model_argv)
        result = load_results(NAME, out.parent, out.name)
        figures[name] = {key: result["figures"][key] for key in KEPT}
        figures[name]["epochs"] = int(epochs)
        figures[name]["training_seconds"] = result["seconds"]["training"]
        commands[name] = result["command"]
    figures["dbn_anchor"] = DBN_ANCHOR
    config = {"models": commands, "n_hidden": rbm_model.N_HIDDEN}
    experiment.write(config, figures, [])


if __name__ == "__main__":
    run_command(main)

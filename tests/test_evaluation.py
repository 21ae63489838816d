"""`deepgen evaluate`: every figure, saved beside the stage, and its parts."""

import json

import numpy as np
import pytest
from scipy import linalg

from deepgen_core import jobs
from deepgen_core.cli import main
from deepgen_core.evaluation import SAMPLE_FIGURES, describe_change
from deepgen_core.quality import frechet_distance, nearest_other_distances
from deepgen_core.runs import open_run

QUICK = ["--ais-runs", "20", "--ais-betas", "300", "--n-samples", "100"]
QUICK += ["--steps", "20"]
KEYS = {
    "test_error",
    "log_likelihood",
    "log_likelihood_reverse",
    "recon_error",
    "sample_quality",
}


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, small_mnist_npz):
    """A 784-32-24 label DBN with all three fine-tuned stages, each evaluated."""
    run_dir = tmp_path_factory.mktemp("runs") / "measured"
    args = ["-q", "train", "--dataset", str(small_mnist_npz), "--layers", "32,24"]
    assert main([*args, "--labels", "--epochs", "2", "--out", str(run_dir)]) == 0
    assert main(["-q", "finetune", str(run_dir), "--epochs", "2"]) == 0
    for method in ("head", "updown"):
        assert main(["-q", "finetune", str(run_dir), "--method", method]) == 0
    return run_dir


def evaluate_json(capsys, run_dir, stage):
    capsys.readouterr()
    code = main(["-q", "evaluate", str(run_dir), "--stage", stage, *QUICK, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize(
    "stage", ["pretrained", "finetuned", "finetuned-head", "finetuned-updown"]
)
def test_every_stage_gets_every_figure(capsys, evaluated_run, stage):
    result = evaluate_json(capsys, evaluated_run, stage)
    assert KEYS <= set(result)
    assert set(SAMPLE_FIGURES) <= set(result["sample_quality"])
    assert set(SAMPLE_FIGURES) <= set(result["sample_quality_stderr"])
    for key in ("log_likelihood", "log_likelihood_reverse"):
        figure = result[key]
        assert {"value", "stderr", "method"} <= set(figure)
        # 784 binary pixels: a bound between a coin flip per pixel and certainty.
        assert -784 * np.log(2) < figure["value"] < 0
        assert 0 < figure["stderr"] < 5
    assert result["log_likelihood"]["method"] == "ais-lower-bound"
    assert result["log_likelihood_reverse"]["method"] == "reverse-ais-lower-bound"
    assert 0 <= result["test_error"] < 0.9
    assert 0 < result["recon_error"] < 0.2
    quality = result["sample_quality"]
    assert 0 <= quality["label_confidence"] <= 1
    assert 0 <= quality["class_entropy"] <= np.log(10) + 1e-9
    assert 0 <= quality["coverage"] <= 1
    assert quality["frechet_distance"] >= 0
    # The same object is saved beside the stage.
    assert open_run(evaluated_run).load_evaluation(stage) == result


def test_gaussian_net_skips_likelihood(capsys, tmp_path):
    # Standardised data with labels: Gaussian input units, no binary images.
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 12))
    y = rng.integers(0, 3, 400)
    x = centres[y] + 0.5 * rng.normal(size=(400, 12))
    x = (x - x.mean(0)) / x.std(0)
    data = tmp_path / "gaussian.npz"
    np.savez(data, x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])
    run_dir = tmp_path / "run"
    args = ["-q", "train", "--dataset", str(data), "--layers", "16", "--epochs", "2"]
    assert main([*args, "--visible", "gaussian", "--out", str(run_dir)]) == 0
    result = evaluate_json(capsys, run_dir, "pretrained")
    for key in ("log_likelihood", "log_likelihood_reverse"):
        assert result[key]["value"] is None
        assert "only for nets with Bernoulli input units" in result[key]["reason"]
    assert 0 <= result["test_error"] <= 1
    assert result["recon_error"] > 0
    assert 0 <= result["sample_quality"]["class_entropy"] <= np.log(3) + 1e-9


def test_head_stage_generates_like_pretrained(capsys, evaluated_run):
    pretrained = evaluate_json(capsys, evaluated_run, "pretrained")
    head = evaluate_json(capsys, evaluated_run, "finetuned-head")
    assert head["log_likelihood"]["value"] == pretrained["log_likelihood"]["value"]
    assert head["sample_quality"] == pretrained["sample_quality"]
    assert head["test_error_method"] == "softmax head"
    assert pretrained["test_error_method"] == "top RBM's label units"
    assert "unchanged" in head["log_likelihood"]["generative_model"]


def test_stage_rewrite_drops_evaluation(capsys, evaluated_run):
    evaluate_json(capsys, evaluated_run, "finetuned-head")
    run = open_run(evaluated_run)
    assert run.load_evaluation("finetuned-head") is not None
    args = ["-q", "finetune", str(evaluated_run), "--method", "head", "--overwrite"]
    assert main(args) == 0
    assert run.load_evaluation("finetuned-head") is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stage", "finetuned-sideways"], "has no stage 'finetuned-sideways'"),
        (["--ais-runs", "0"], "at least 2 runs"),
        (["--ais-betas", "2"], "at least 3 steps"),
        (["--n-samples", "1"], "at least 2 samples"),
    ],
)
def test_bad_evaluate_requests_are_named(capsys, evaluated_run, args, message):
    capsys.readouterr()
    assert main(["-q", "evaluate", str(evaluated_run), *args]) == 2
    assert message in capsys.readouterr().err


def test_evaluate_job_is_checked_at_submission(evaluated_run, tmp_path):
    with pytest.raises(Exception, match="at least 2 runs"):
        jobs.submit(
            "evaluate", {"run": str(evaluated_run), "ais_runs": 1}, tmp_path / "runs"
        )


def test_frechet_distance_matches_matrix_square_root():
    rng = np.random.default_rng(0)
    first = rng.normal(size=(400, 12))
    second = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 1
    gap = first.mean(0) - second.mean(0)
    c1, c2 = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
    expected = gap @ gap + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance(first, second) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(first, first) == pytest.approx(0.0, abs=1e-8)


def test_nearest_other_sample_skips_itself():
    points = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0], [0.0, 0.0]])
    assert nearest_other_distances(points).tolist() == [0.0, 1.0, 1.0, 0.0]


def test_change_is_reported_only_beyond_error_bars():
    def evaluation(stage, value, confidence):
        figures = dict.fromkeys(SAMPLE_FIGURES, 1.0)
        figures["label_confidence"] = confidence
        errors = dict.fromkeys(SAMPLE_FIGURES, 0.01)
        return {
            "stage": stage,
            "test_error": 0.1,
            "recon_error": 0.05,
            "log_likelihood": {"value": value, "stderr": 0.5},
            "sample_quality": figures,
            "sample_quality_stderr": errors,
        }

    before = evaluation("pretrained", -100.0, 0.5)
    same = describe_change(before, evaluation("finetuned", -100.8, 0.51))
    assert same == "finetuned and pretrained measure the same within their error bars."
    text = describe_change(before, evaluation("finetuned", -104.0, 0.8))
    assert "better on confidence in the label up 60%" in text
    assert "worse on log-likelihood down 4.0 nats" in text


def test_one_class_entropy_is_zero():
    from deepgen_core.quality import _class_figures

    entropy, covered = _class_figures(np.zeros(10, dtype=int), 10)
    assert f"{entropy:.3f}" == "0.000"
    assert covered == 0.1

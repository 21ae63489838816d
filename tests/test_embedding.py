"""2-D projections of unit activations."""

import numpy as np
import pytest

from deepgen_core.embedding import project
from deepgen_core.errors import InputError


@pytest.fixture(scope="module")
def clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, size=(3, 10))
    points = np.concatenate([c + rng.normal(0, 0.3, size=(40, 10)) for c in centres])
    return points, np.repeat(np.arange(3), 40)


def mean_within_over_between(coords, labels):
    """Mean distance inside clusters over mean distance between their centres."""
    centres = np.array([coords[labels == k].mean(0) for k in range(3)])
    within = np.mean(
        [
            np.linalg.norm(coords[labels == k] - centres[k], axis=1).mean()
            for k in range(3)
        ]
    )
    between = np.mean(
        [
            np.linalg.norm(centres[i] - centres[j])
            for i in range(3)
            for j in range(i + 1, 3)
        ]
    )
    return within / between


@pytest.mark.parametrize("method", ["pca", "umap"])
def test_projection_separates_clusters(clusters, method):
    points, labels = clusters
    coords = project(points, method, n_neighbors=10)
    assert coords.shape == (120, 2)
    assert np.isfinite(coords).all()
    assert mean_within_over_between(coords, labels) < 0.3


def test_umap_with_fewer_points_than_neighbours(clusters):
    points, _ = clusters
    coords = project(points[:6], "umap", n_neighbors=15)
    assert coords.shape == (6, 2)
    assert np.isfinite(coords).all()


def test_single_unit_pca_gives_two_columns(clusters):
    points, _ = clusters
    coords = project(points[:, :1], "pca")
    assert coords.shape == (120, 2)
    assert np.all(coords[:, 1] == 0)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (np.ones((2, 4)), "at least 3 points, got 2"),
        (np.ones((50, 4)), "same value for all these images"),
        (np.ones((50, 0)), "the unit selection is empty"),
    ],
    ids=["two-points", "identical-rows", "no-units"],
)
def test_projection_rejects_degenerate_input(features, message):
    with pytest.raises(InputError, match=message):
        project(features, "umap")


def test_projection_rejects_bad_parameters(clusters):
    points, _ = clusters
    with pytest.raises(InputError, match="unknown projection 'tsne'"):
        project(points, "tsne")
    with pytest.raises(InputError, match="at least 2 neighbours, got 1"):
        project(points, "umap", n_neighbors=1)

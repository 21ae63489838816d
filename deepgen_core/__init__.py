"""deepgen: train, fine-tune, sample and look inside Deep Belief Nets.

The scikit-learn estimators :class:`RBM` and :class:`DBN` are the shortest
way in; the torch modules :class:`RBMModule` and :class:`DBNModule`, the
trainers in :mod:`deepgen_core.training` and :mod:`deepgen_core.dbn`, and the
run-folder operations in :mod:`deepgen_core.operations` sit beneath them.
"""

__version__ = "0.1.0"

from .dbn import DBNConfig, DBNModule, train_dbn
from .errors import InputError, TrainingDiverged
from .rbm import RBMModule
from .training import RBMTrainingConfig, train_rbm


def __getattr__(name: str):
    # The estimators import scikit-learn, which takes about half a second;
    # the app's first page does not need them.
    if name in ("DBN", "RBM"):
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'deepgen_core' has no attribute {name!r}")


__all__ = [
    "DBN",
    "RBM",
    "DBNConfig",
    "DBNModule",
    "InputError",
    "RBMModule",
    "RBMTrainingConfig",
    "TrainingDiverged",
    "train_dbn",
    "train_rbm",
]

"""Progress reports and cancellation shared by every long job.

A long function takes ``progress``, a callable that receives a
:class:`Progress` after every batch, and ``should_stop``, a callable checked
between batches. The command line shows the reports as a progress bar and the
app as a progress widget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class Progress:
    """One progress report of a long job."""

    stage: str
    """Name of the running step: ``pretrain``, ``finetune``, ..."""
    step: int
    """Batches done in the current epoch."""
    total: int
    """Batches in one epoch."""
    epoch: int = 0
    """Current epoch, counted from 1."""
    n_epochs: int = 0
    layer: int | None = None
    """Layer being trained, counted from 1, when the job trains layers."""
    n_layers: int | None = None
    metrics: dict = field(default_factory=dict)
    """Latest figures, such as the last epoch's reconstruction error."""
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


ProgressCallback = Callable[[Progress], None]
StopCheck = Callable[[], bool]


class TrainingCancelled(Exception):
    """Raised when ``should_stop`` asked a job to stop at a batch boundary.

    The last saved checkpoint is left in place, so the job can resume.
    """


def report(callback: ProgressCallback | None, progress: Progress) -> None:
    """Send ``progress`` to ``callback`` when there is one."""
    if callback is not None:
        callback(progress)


def check_stop(should_stop: StopCheck | None) -> None:
    """Raise :class:`TrainingCancelled` when ``should_stop`` returns true."""
    if should_stop is not None and should_stop():
        raise TrainingCancelled("stopped at a batch boundary on request")


def format_figures(figures: dict) -> str:
    """Write figures as ``name=value`` pairs with 4 significant digits."""
    return " ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in figures.items()
    )

"""deepgen: train, fine-tune, sample and look inside Deep Belief Nets."""

__version__ = "0.1.0"

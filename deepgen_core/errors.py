"""Exceptions that deepgen raises for input a user can correct."""


class InputError(ValueError):
    """Invalid data, parameters or files, with a message naming the fix.

    The command line prints the message of this error without a traceback.
    """


class TrainingDiverged(RuntimeError):
    """Weights or the reconstruction error became NaN or infinite."""

"""Datasets for training Deep Belief Nets: built-in image sets and user files.

Every dataset is returned as a :class:`Dataset` with float32 feature rows
``x`` of shape (n_samples, n_features), optional int64 labels ``y`` of shape
(n_samples,), and a fixed held-out split (``x_test``, ``y_test``).

Convention for pixel values
---------------------------
Image pixels are scaled to [0, 1] as float32 (uint8 / 255). Bernoulli visible
units use these intensities directly as the probabilities of the units being
on, without thresholding. This is deepgen's one binarisation convention.
:func:`binarize` converts data to {0, 1} for users who want binary data.

Built-in datasets
-----------------
``mnist-10k``
    The first 10,000 images and labels of the official MNIST training file,
    embedded as ``assets/mnist-10k.npz`` (built by ``scripts/build_mnist10k.py``).
    Its SHA-256 is checked on every load. Rows 0-7,999 are the training split
    and rows 8,000-9,999 are held out.
``digits``
    scikit-learn's 8x8 handwritten digits (1,797 images, values 0-16 divided
    by 16). The first 1,437 images are the training split and the remaining
    360 are held out.
``mnist``, ``fashion-mnist``
    The four published IDX files of each set in ``<data_dir>/<name>/``, with
    the standard split of 60,000 training and 10,000 test images. Their
    SHA-256 sums are checked on every load. :func:`download` fetches them.

The data folder is ``$DEEPGEN_DATA_DIR`` when that variable is set, and
``~/.cache/deepgen/data`` otherwise.

User files
----------
:func:`load_user_file` reads ``.npz`` and ``.csv`` files, and
:func:`load_dataset` accepts a path to either.

* NPZ: arrays ``x_train`` (with optional ``y_train``, ``x_test``, ``y_test``)
  or ``x`` (with optional ``y``). Pickled object arrays are rejected and never
  unpickled.
* CSV: numbers separated by commas, with an optional header row. A header
  column named ``label`` contains the labels, and all other columns are features.

Labels are class numbers 0..K-1 with K at most ``MAX_CLASSES`` (1,000).

Without an explicit test split, the last 20% of the rows (rounded down, at
least one row) are held out. Images of shape (n_samples, height, width) are
flattened to rows. uint8 data is divided by 255, and other numeric data is
converted to float32 unchanged.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import hashlib
import http.client
import logging
import math
import os
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepgen_core.errors import InputError

logger = logging.getLogger(__name__)

DATASET_NAMES: tuple[str, ...] = ("mnist-10k", "digits", "mnist", "fashion-mnist")

MNIST10K_PATH = Path(__file__).resolve().parent.parent / "assets" / "mnist-10k.npz"
MNIST10K_SHA256 = "e520de61edeb82feb64d65f344bc054549713e1b4436645b085d299b06a85daf"
MNIST10K_N_TRAIN = 8000
DIGITS_N_TRAIN = 1437

IMAGE_MAGIC = 0x00000803  # IDX: uint8 (type code 0x08), 3 dimensions
LABEL_MAGIC = 0x00000801  # IDX: uint8 (type code 0x08), 1 dimension

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

# SHA-256 sums of the published compressed IDX files.
IDX_SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        TRAIN_IMAGES: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        TRAIN_LABELS: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        TEST_IMAGES: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        TEST_LABELS: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        TRAIN_IMAGES: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        TRAIN_LABELS: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        TEST_IMAGES: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        TEST_LABELS: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

# Base URLs tried in order. The files are verified against IDX_SHA256, so a
# plain-http mirror cannot substitute other data.
# NOTE: the test suite never downloads, so these URLs are untested by it.
DOWNLOAD_MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
}

MAX_CLASSES = 1000
"""Largest number of classes a user file may have, so its labels must be below it.

With label units, training stores the labels one-hot as float32: 240 MB for
60,000 rows and 1,000 classes, and 240 TB for a label of a billion."""

BINARIZE_MODES: tuple[str, ...] = ("none", "threshold", "stochastic")
USER_FILE_SUFFIXES: tuple[str, ...] = (".npz", ".csv")
_DATASET_HINT = (
    f"Pass the path of a {' or '.join(USER_FILE_SUFFIXES)} file, or a dataset name: "
    f"{', '.join(DATASET_NAMES)}."
)

# IDX type codes (byte 2 of the magic number) and the dtypes they stand for.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_DOWNLOAD_TIMEOUT_S = 60
_DOWNLOAD_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, eq=False)
class Dataset:
    """Feature rows with optional labels and a fixed held-out split.

    Attributes
    ----------
    name : str
        Dataset name from ``DATASET_NAMES``, or the file name of user data.
    x_train : ndarray of shape (n_train, n_features), dtype float32
        Training rows.
    y_train : ndarray of shape (n_train,), dtype int64, or None
        Training labels, None when the data is unlabelled.
    x_test : ndarray of shape (n_test, n_features), dtype float32
        Held-out rows.
    y_test : ndarray of shape (n_test,), dtype int64, or None
        Held-out labels, None when the data is unlabelled.
    image_shape : tuple of (height, width), or None
        Shape of one image when each row is a flattened image, such as
        (28, 28) for MNIST and (8, 8) for digits.
    n_classes : int or None
        Number of classes (maximum label + 1, at most ``MAX_CLASSES`` for user
        files), None when unlabelled.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    image_shape: tuple[int, int] | None
    n_classes: int | None

    @property
    def n_features(self) -> int:
        """Number of features (visible units) per row."""
        return int(self.x_train.shape[1])


def default_data_dir() -> Path:
    """Return ``$DEEPGEN_DATA_DIR`` if set, else ``~/.cache/deepgen/data``."""
    configured = os.environ.get("DEEPGEN_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "deepgen" / "data"


def load_dataset(
    name: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None
) -> Dataset:
    """Load a built-in dataset by name, or a user's ``.npz`` or ``.csv`` file.

    Parameters
    ----------
    name : str or path-like
        One of ``DATASET_NAMES``, or the path of a ``.npz`` or ``.csv`` file.
    data_dir : str or path-like, optional
        Folder that contains ``mnist/`` and ``fashion-mnist/``. Defaults to
        :func:`default_data_dir`.

    Returns
    -------
    Dataset

    Raises
    ------
    InputError
        If the name is unknown, a file is missing or damaged, or the data is
        invalid.
    """
    if isinstance(name, str) and name in DATASET_NAMES:
        return _load_builtin(name, data_dir)
    if not str(name).strip():
        raise InputError(f"no dataset given. {_DATASET_HINT}")

    path = Path(name).expanduser()
    looks_like_path = (
        path.suffix.lower() in USER_FILE_SUFFIXES
        or path.exists()
        or os.sep in str(name)
        or "/" in str(name)
    )
    if looks_like_path:
        return load_user_file(path)
    close_names = difflib.get_close_matches(str(name).lower(), DATASET_NAMES, n=1)
    suggestion = f" Did you mean {close_names[0]!r}?" if close_names else ""
    raise InputError(
        f"unknown dataset {str(name)!r}.{suggestion} Valid names are "
        f"{', '.join(DATASET_NAMES)}. A path to a .npz or .csv file also works."
    )


def _load_builtin(name: str, data_dir: str | os.PathLike[str] | None) -> Dataset:
    if name == "mnist-10k":
        dataset = _load_mnist10k()
    elif name == "digits":
        dataset = _load_digits()
    else:
        dataset = _load_idx_dataset(name, data_dir)
    logger.info(
        "Loaded %s: %d training rows, %d held-out rows, %d features",
        name,
        len(dataset.x_train),
        len(dataset.x_test),
        dataset.n_features,
    )
    return dataset


# --- Built-in datasets ---------------------------------------------------------


def _load_mnist10k() -> Dataset:
    path = verify_files("mnist-10k")[0]
    with np.load(path, allow_pickle=False) as archive:
        images = archive["images"]  # (10000, 784) uint8
        labels = archive["labels"]  # (10000,) uint8
    x = _scale_uint8(images)
    y = labels.astype(np.int64)
    n_train = MNIST10K_N_TRAIN
    return Dataset(
        name="mnist-10k",
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_test=x[n_train:],
        y_test=y[n_train:],
        image_shape=(28, 28),
        n_classes=10,
    )


def _load_digits() -> Dataset:
    # Imported here because importing scikit-learn takes several hundred ms.
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # (1797, 64), values 0..16
    y = digits.target.astype(np.int64)
    n_train = DIGITS_N_TRAIN
    return Dataset(
        name="digits",
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_test=x[n_train:],
        y_test=y[n_train:],
        image_shape=(8, 8),
        n_classes=10,
    )


def _load_idx_dataset(name: str, data_dir: str | os.PathLike[str] | None) -> Dataset:
    paths = {path.name: path for path in verify_files(name, data_dir)}
    x_train = read_idx(paths[TRAIN_IMAGES], expected_magic=IMAGE_MAGIC)
    y_train = read_idx(paths[TRAIN_LABELS], expected_magic=LABEL_MAGIC)
    x_test = read_idx(paths[TEST_IMAGES], expected_magic=IMAGE_MAGIC)
    y_test = read_idx(paths[TEST_LABELS], expected_magic=LABEL_MAGIC)
    return Dataset(
        name=name,
        x_train=_scale_uint8(x_train.reshape(len(x_train), -1)),
        y_train=y_train.astype(np.int64),
        x_test=_scale_uint8(x_test.reshape(len(x_test), -1)),
        y_test=y_test.astype(np.int64),
        image_shape=(int(x_train.shape[1]), int(x_train.shape[2])),
        n_classes=10,
    )


def _scale_uint8(pixels: np.ndarray) -> np.ndarray:
    """Convert uint8 pixels to float32 intensities in [0, 1]."""
    scaled = pixels.astype(np.float32)
    scaled /= 255.0
    return scaled


# --- File checks and downloads -------------------------------------------------


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_DOWNLOAD_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(
    name: str, data_dir: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Check that a built-in dataset's files exist and match their SHA-256 sums.

    Parameters
    ----------
    name : str
        One of ``DATASET_NAMES``.
    data_dir : str or path-like, optional
        Folder that contains ``mnist/`` and ``fashion-mnist/``. Defaults to
        :func:`default_data_dir`. Ignored for ``mnist-10k`` and ``digits``.

    Returns
    -------
    list of Path
        The verified files: the embedded NPZ for ``mnist-10k``, the four IDX
        files for ``mnist`` and ``fashion-mnist``, and none for ``digits``
        (scikit-learn ships that data).

    Raises
    ------
    InputError
        If the name is unknown, or a file is missing or has the wrong sum.
    """
    if name == "mnist-10k":
        return [_verify_mnist10k()]
    if name == "digits":
        return []
    if name not in IDX_SHA256:
        raise InputError(
            f"unknown dataset {name!r}. Valid names are {', '.join(DATASET_NAMES)}."
        )

    folder = _resolve_data_dir(data_dir) / name
    paths = [folder / filename for filename in IDX_SHA256[name]]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        listed = ", ".join(str(path) for path in missing)
        raise InputError(
            f"{name} data file(s) not found: {listed}.{_uncompressed_hint(missing)} "
            f"Download them with `deepgen data download {name}`, or set "
            f"DEEPGEN_DATA_DIR to the folder that contains the {name}/ folder."
        )
    for path in paths:
        expected = IDX_SHA256[name][path.name]
        actual = file_sha256(path)
        if actual != expected:
            raise InputError(
                f"{name} data file {path} has SHA-256 {actual}, expected {expected}. "
                "The file is damaged or is not the published version. Delete it and "
                f"download it again with `deepgen data download {name}`."
            )
    return paths


def _uncompressed_hint(missing: list[Path]) -> str:
    """Name uncompressed copies found in place of missing .gz files, if any."""
    uncompressed = [path.with_suffix("") for path in missing]
    found = [path.name for path in uncompressed if path.is_file()]
    if not found:
        return ""
    return (
        f" The folder contains the uncompressed file(s) {', '.join(found)}, but "
        "deepgen reads only the published .gz files and checks their SHA-256 sums, "
        "so keep the .gz files as downloaded."
    )


def _verify_mnist10k() -> Path:
    path = MNIST10K_PATH
    rebuild = (
        "Restore it from the deepgen repository, or rebuild it from the MNIST IDX "
        "files with `python scripts/build_mnist10k.py MNIST_FOLDER`."
    )
    if not path.is_file():
        raise InputError(f"embedded dataset file {path} not found. {rebuild}")
    actual = file_sha256(path)
    if actual != MNIST10K_SHA256:
        raise InputError(
            f"embedded dataset file {path} failed its SHA-256 checksum (found "
            f"{actual}, expected {MNIST10K_SHA256}), so the file is damaged. {rebuild}"
        )
    return path


def download(name: str, data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Download the IDX files of ``mnist`` or ``fashion-mnist`` and verify them.

    Each file goes to ``<data_dir>/<name>/``. Files that are already present
    with the right SHA-256 are kept. A new file is written to a temporary file
    in the same folder and renamed once its sum matches, so an interrupted
    download never leaves a partial file under the final name.

    Parameters
    ----------
    name : str
        One of ``DATASET_NAMES``. ``mnist-10k`` is embedded in the package and
        ``digits`` ships with scikit-learn, so neither downloads anything.
    data_dir : str or path-like, optional
        Target folder. Defaults to :func:`default_data_dir`.

    Returns
    -------
    list of Path
        The verified files, as :func:`verify_files` returns them.

    Raises
    ------
    InputError
        If the name is unknown, or a file could not be downloaded with the
        right sum from any mirror.
    """
    if name not in IDX_SHA256:
        return verify_files(name, data_dir)

    folder = _resolve_data_dir(data_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    for filename, expected in IDX_SHA256[name].items():
        target = folder / filename
        if target.is_file():
            if file_sha256(target) == expected:
                logger.info("%s is present and verified, skipping", target)
                continue
            logger.warning("%s has the wrong SHA-256, downloading it again", target)
        _download_from_mirrors(name, filename, target, expected)
    return verify_files(name, data_dir)


def _download_from_mirrors(
    name: str, filename: str, target: Path, expected: str
) -> None:
    failures = []
    for base_url in DOWNLOAD_MIRRORS[name]:
        url = base_url + filename
        logger.info("Downloading %s to %s", url, target)
        try:
            _download_verified(url, target, expected)
            return
        except (OSError, http.client.HTTPException, ValueError) as exc:
            logger.warning("Download of %s failed: %s", url, exc)
            failures.append(f"{url} ({exc})")
    raise InputError(
        f"download of {filename} for {name} failed from every mirror: "
        f"{'; '.join(failures)}. Check the internet connection, or copy the file "
        f"into {target.parent} by hand."
    )


def _download_verified(url: str, target: Path, expected: str) -> None:
    """Download ``url`` to ``target`` through a temporary file and check its sum.

    Raises ValueError, after deleting the temporary file, if the sum differs.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "deepgen"})
    digest = hashlib.sha256()
    fd, temp_name = tempfile.mkstemp(
        dir=target.parent, prefix=target.name, suffix=".part"
    )
    temp_path = Path(temp_name)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_S) as response,
        ):
            for chunk in iter(lambda: response.read(_DOWNLOAD_CHUNK_BYTES), b""):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if actual != expected:
            raise ValueError(f"SHA-256 is {actual}, expected {expected}")
        os.replace(temp_path, target)
    finally:
        temp_path.unlink(missing_ok=True)


def _resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    if data_dir is None:
        return default_data_dir()
    return Path(data_dir).expanduser()


# --- IDX files -------------------------------------------------------------------


def read_idx(
    path: str | os.PathLike[str], expected_magic: int | None = None
) -> np.ndarray:
    """Parse an IDX file, gzip-compressed or plain, into an array.

    The IDX header is a big-endian magic number, 0x0000TTDD with type code TT
    (0x08 for uint8) and DD dimensions, then one 4-byte size per dimension.
    The data follows in row-major order.

    Parameters
    ----------
    path : str or path-like
        IDX file. Compression is detected from the content, not the name.
    expected_magic : int, optional
        Magic number the file must have, such as ``IMAGE_MAGIC`` (0x00000803)
        for uint8 images of shape (n, height, width) or ``LABEL_MAGIC``
        (0x00000801) for uint8 labels of shape (n,).

    Returns
    -------
    ndarray
        Array with the shape and dtype from the header, in native byte order.

    Raises
    ------
    InputError
        If the file is missing, is not valid gzip, has a wrong or invalid
        magic number, or contains fewer or more data bytes than its header gives.
    """
    path = Path(path)
    raw = _read_idx_bytes(path)
    if len(raw) < 4:
        raise InputError(
            f"IDX file {path} is {len(raw)} bytes long, too short for the 4-byte "
            f"magic number. {_redownload_hint(path)}"
        )

    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise InputError(
            f"IDX file {path} has magic 0x{magic:08X}, expected 0x{expected_magic:08X} "
            f"for {_describe_magic(expected_magic)}. The file contains other data or "
            f"is corrupt. {_redownload_hint(path)}"
        )
    type_code, n_dims = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or type_code not in _IDX_DTYPES or n_dims == 0:
        raise InputError(
            f"IDX file {path} has magic 0x{magic:08X}, which is not a valid IDX magic "
            "number (two zero bytes, a type code such as 0x08 for uint8, then the "
            f"number of dimensions). {_redownload_hint(path)}"
        )

    header_bytes = 4 + 4 * n_dims
    if len(raw) < header_bytes:
        raise InputError(
            f"IDX file {path} is truncated. Its header needs {header_bytes} bytes, "
            f"but the file has {len(raw)}. {_redownload_hint(path)}"
        )
    shape = tuple(
        int.from_bytes(raw[4 + 4 * axis : 8 + 4 * axis], "big")
        for axis in range(n_dims)
    )
    dtype = _IDX_DTYPES[type_code]
    expected_bytes = math.prod(shape) * dtype.itemsize
    found_bytes = len(raw) - header_bytes
    if found_bytes != expected_bytes:
        problem = (
            "is truncated" if found_bytes < expected_bytes else "has trailing bytes"
        )
        raise InputError(
            f"IDX file {path} {problem}. Its header gives shape {shape}, so "
            f"{expected_bytes} data bytes were expected, but {found_bytes} were found. "
            f"{_redownload_hint(path)}"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header_bytes).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _read_idx_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"IDX file {path} not found. Check the path.") from None
    except OSError as exc:
        raise InputError(f"IDX file {path} could not be read ({exc}).") from exc
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(
            f"IDX file {path} is not valid gzip ({exc}). The file is incomplete or "
            f"corrupt. {_redownload_hint(path)}"
        ) from exc


def _describe_magic(magic: int) -> str:
    if magic == IMAGE_MAGIC:
        return "images (3-D uint8)"
    if magic == LABEL_MAGIC:
        return "labels (1-D uint8)"
    n_dims = magic & 0xFF
    dtype = _IDX_DTYPES.get((magic >> 8) & 0xFF)
    if dtype is None:
        return f"{n_dims}-D data"
    return f"{n_dims}-D {dtype.name} data"


def _redownload_hint(path: Path) -> str:
    name = path.parent.name
    if name in IDX_SHA256:
        return f"Download it again with `deepgen data download {name}`."
    return "Replace it with a good copy of the file."


# --- User files ------------------------------------------------------------------


def load_user_file(path: str | os.PathLike[str]) -> Dataset:
    """Load a user's ``.npz`` or ``.csv`` file as a :class:`Dataset`.

    Parameters
    ----------
    path : str or path-like
        An NPZ archive with arrays ``x_train`` (optional ``y_train``,
        ``x_test``, ``y_test``) or ``x`` (optional ``y``), or a numeric CSV
        file with an optional header row whose ``label`` column contains labels.

    Returns
    -------
    Dataset
        Features as float32 (uint8 divided by 255). Without an explicit test
        split, the last 20% of the rows (rounded down, at least one) are
        held out. ``image_shape`` is (height, width) for 3-D image arrays and
        for a perfect-square number of features (at least 4), else None.

    Raises
    ------
    InputError
        If the file is missing, has another extension, cannot be parsed, or
        its data is invalid (fewer than 2 rows, NaN or inf, labels that are
        not non-negative integers or do not match the rows).
    """
    if not str(path).strip():
        raise InputError(f"no data file given. {_DATASET_HINT}")
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(
            f"{path} is a folder, but a data file name is needed. {_DATASET_HINT}"
        )
    suffix = path.suffix.lower()
    if not suffix:
        raise InputError(f"data file {path} has no extension. {_DATASET_HINT}")
    if suffix not in USER_FILE_SUFFIXES:
        raise InputError(
            f"data file {path} has extension {path.suffix!r}. deepgen reads "
            f"{' and '.join(USER_FILE_SUFFIXES)} files."
        )
    if not path.is_file():
        raise InputError(f"data file {path} not found. Check the path.")

    if suffix == ".npz":
        arrays = _read_npz(path)
        describe_row = _describe_array_row
    else:
        arrays, describe_row = _read_csv(path)
    dataset = _build_user_dataset(path, arrays, describe_row)
    logger.info(
        "Loaded %s: %d training rows, %d held-out rows, %d features",
        path,
        len(dataset.x_train),
        len(dataset.x_test),
        dataset.n_features,
    )
    return dataset


def _describe_array_row(index: int) -> str:
    return f"row index {index}"


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read the recognised arrays of an NPZ archive into a dict."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic[:2] != b"PK" and magic[:1] != b"\x93":
        raise InputError(
            f"NPZ file {path.name} is not an NPZ archive (it does not start like a "
            "zip file). Save the data with numpy.savez(path, x_train=..., "
            "y_train=...) or numpy.savez_compressed."
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"NPZ file {path} could not be read ({exc}). Save the data with "
            "numpy.savez(path, x=...) or numpy.savez_compressed."
        ) from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(
            f"NPZ file {path} contains a single .npy array, not an NPZ archive. Save "
            "it with numpy.savez(path, x=array)."
        )

    with archive:
        keys = set(archive.files)
        if "x_train" in keys:
            expected_keys = ("x_train", "y_train", "x_test", "y_test")
        elif "x" in keys:
            expected_keys = ("x", "y")
        else:
            raise InputError(
                f"NPZ file {path} contains arrays {sorted(keys)}, but deepgen needs "
                "x_train (with optional y_train, x_test, y_test) or x (with optional "
                "y). Save the data under those names."
            )
        ignored = sorted(keys - set(expected_keys))
        if ignored:
            logger.warning("Ignoring arrays %s in %s", ignored, path)
        return {
            key: _read_npz_array(archive, key, path)
            for key in expected_keys
            if key in keys
        }


def _read_npz_array(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:
        # With allow_pickle=False, numpy raises ValueError naming allow_pickle
        # for object arrays instead of unpickling them.
        if "allow_pickle" not in str(exc):
            raise InputError(
                f"array {key!r} in NPZ file {path} could not be read ({exc})."
            ) from exc
        raise InputError(
            f"array {key!r} in NPZ file {path} is an object array, which deepgen does "
            f"not load because unpickling can run arbitrary code ({exc}). Save it as a "
            "numeric array, for example x.astype(numpy.float32)."
        ) from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"array {key!r} in NPZ file {path} could not be read ({exc}). The file "
            "is damaged, so save the data again."
        ) from exc


def _read_csv(path: Path) -> tuple[dict[str, np.ndarray], Callable[[int], str]]:
    """Read a numeric CSV file into arrays ``x`` and optionally ``y``.

    The first non-blank row is a header when any of its non-empty cells is not
    a number, so a header whose names all parse as numbers is read as data. Also returns
    a function that turns a data-row index into the row number that a
    spreadsheet shows (1-based, counting the header row).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"CSV file {path} is not UTF-8 text (byte {exc.start} cannot be decoded). "
            "Save it as a UTF-8 CSV file."
        ) from exc
    lines = text.splitlines()
    line_numbers = [number for number, line in enumerate(lines, 1) if line.strip()]
    if not line_numbers:
        raise InputError(f"CSV file {path} is empty. It needs at least 2 data rows.")

    first_cells = _split_csv_line(lines[line_numbers[0] - 1])
    header = None
    if any(cell.strip() and not _is_number(cell) for cell in first_cells):
        header = [cell.strip() for cell in first_cells]
        line_numbers = line_numbers[1:]
    if not line_numbers:
        raise InputError(f"CSV file {path} has a header row but no data rows.")

    values = _parse_csv_rows(path, lines, line_numbers)  # (n_rows, n_columns)

    def describe_row(index: int) -> str:
        return f"row {line_numbers[index]}"

    _check_csv_finite(path, values, describe_row)
    if header is None:
        return {"x": values}, describe_row
    return _split_csv_label(path, header, values), describe_row


def _split_csv_line(line: str) -> list[str]:
    return next(csv.reader([line]))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _parse_csv_rows(
    path: Path, lines: list[str], line_numbers: list[int]
) -> np.ndarray:
    """Parse the data rows, naming the first bad cell if there is one."""
    data_lines = [lines[number - 1] for number in line_numbers]
    try:
        return np.loadtxt(
            data_lines, delimiter=",", dtype=np.float64, ndmin=2, comments=None
        )
    except ValueError:
        # np.loadtxt reports problems by position in the list it was given, so
        # parse again cell by cell to name the row a spreadsheet would show.
        pass

    rows = []
    n_columns = None
    for number, line in zip(line_numbers, data_lines):
        cells = _split_csv_line(line)
        if n_columns is None:
            n_columns = len(cells)
        elif len(cells) != n_columns:
            raise InputError(
                f"CSV file {path} has {len(cells)} columns in row {number}, but "
                f"{n_columns} in row {line_numbers[0]}. Every row needs the same "
                "number of columns."
            )
        rows.append(
            [
                _parse_csv_cell(path, cell, number, column)
                for column, cell in enumerate(cells, 1)
            ]
        )
    return np.array(rows, dtype=np.float64)


def _parse_csv_cell(path: Path, cell: str, row: int, column: int) -> float:
    try:
        return float(cell)
    except ValueError:
        pass
    problem = "an empty cell" if not cell.strip() else f"the text {cell.strip()!r}"
    separator_hint = ""
    for separator, name in ((";", "semicolons"), ("\t", "tabs")):
        if separator in cell:
            separator_hint = (
                f" The cell contains {name}, but the cells of a CSV file must be "
                "separated by commas, so save the file again with commas as the "
                "separator."
            )
            break
    raise InputError(
        f"CSV file {path} has {problem} at row {row}, column {column}, where a number is "
        "expected. Every cell below the optional header row must be a number."
        f"{separator_hint}"
    )


def _check_csv_finite(
    path: Path, values: np.ndarray, describe_row: Callable[[int], str]
) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise InputError(
            f"CSV file {path} contains {int(bad.sum())} NaN or infinite values, the "
            f"first in {describe_row(int(row))}, column {int(column) + 1}. Replace them "
            "with numbers."
        )


def _split_csv_label(
    path: Path, header: list[str], values: np.ndarray
) -> dict[str, np.ndarray]:
    if len(header) != values.shape[1]:
        raise InputError(
            f"CSV file {path} has {len(header)} columns in its header row but "
            f"{values.shape[1]} in its data rows. Every row needs the same number of "
            "columns."
        )
    label_columns = [
        index for index, cell in enumerate(header) if cell.lower() == "label"
    ]
    if not label_columns:
        return {"x": values}
    if len(label_columns) > 1:
        numbers = ", ".join(str(index + 1) for index in label_columns)
        raise InputError(
            f"CSV file {path} has {len(label_columns)} columns named 'label' "
            f"(columns {numbers}). Keep one label column."
        )
    label_column = label_columns[0]
    return {
        "x": np.delete(values, label_column, axis=1),
        "y": values[:, label_column],
    }


# --- Validation of user data -----------------------------------------------------


def _build_user_dataset(
    path: Path, arrays: dict[str, np.ndarray], describe_row: Callable[[int], str]
) -> Dataset:
    """Validate the arrays of a user file and split off the held-out rows."""
    x_key, y_key = ("x", "y") if "x" in arrays else ("x_train", "y_train")
    x, image_shape = _validate_features(
        _describe_source(path, x_key), arrays[x_key], describe_row
    )
    y = _validate_labels(
        _describe_source(path, y_key), arrays.get(y_key), len(x), describe_row
    )
    if "x_test" in arrays:
        x_train, y_train = x, y
        x_test, y_test = _validate_test_split(path, arrays, x_train, y_train)
    elif "y_test" in arrays:
        raise InputError(
            f"NPZ file {path} contains y_test but no x_test. Add x_test or remove "
            "y_test."
        )
    else:
        x_train, y_train, x_test, y_test = _hold_out_last_rows(path, x, y)

    n_classes = None
    if y_train is not None and y_test is not None:
        n_classes = int(max(y_train.max(), y_test.max())) + 1
    return Dataset(
        name=path.name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        image_shape=image_shape,
        n_classes=n_classes,
    )


def _hold_out_last_rows(
    path: Path, x: np.ndarray, y: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Split off the last 20% of the rows (rounded down, at least one)."""
    if len(x) < 2:
        raise InputError(
            f"data file {path} has {len(x)} row(s) and no separate test split. "
            "deepgen needs at least 2 rows, one to train on and one to hold out."
        )
    n_test = max(1, len(x) // 5)
    n_train = len(x) - n_test
    if y is None:
        return x[:n_train], None, x[n_train:], None
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def _validate_test_split(
    path: Path,
    arrays: dict[str, np.ndarray],
    x_train: np.ndarray,
    y_train: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    x_test, _ = _validate_features(
        _describe_source(path, "x_test"), arrays["x_test"], _describe_array_row
    )
    for key, rows in (("x_train", x_train), ("x_test", x_test)):
        if len(rows) == 0:
            raise InputError(f"array {key!r} in NPZ file {path} has no rows.")
    if x_test.shape[1] != x_train.shape[1]:
        raise InputError(
            f"NPZ file {path} has {x_train.shape[1]} features per row in x_train but "
            f"{x_test.shape[1]} in x_test. Both need the same number of features."
        )
    y_test = _validate_labels(
        _describe_source(path, "y_test"),
        arrays.get("y_test"),
        len(x_test),
        _describe_array_row,
    )
    if (y_train is None) != (y_test is None):
        present, absent = (
            ("y_train", "y_test") if y_test is None else ("y_test", "y_train")
        )
        raise InputError(
            f"NPZ file {path} contains {present} but not {absent}. Give labels for "
            "both splits or for neither."
        )
    return x_test, y_test


def _describe_source(path: Path, key: str) -> str:
    """Name the array ``key`` of a user file as a message can show it."""
    if path.suffix.lower() == ".csv":
        if key == "y":
            return f"the label column of CSV file {path}"
        return f"CSV file {path}"
    return f"array {key!r} in NPZ file {path}"


def _validate_features(
    source: str, array: np.ndarray, describe_row: Callable[[int], str]
) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Check and convert features to float32 rows of shape (n_samples, n_features).

    Returns the rows and the image shape (height, width), or None.
    """
    is_real = np.issubdtype(array.dtype, np.integer) or np.issubdtype(
        array.dtype, np.floating
    )
    if not (is_real or array.dtype == np.bool_):
        raise InputError(
            f"{source} has dtype {array.dtype}, but deepgen needs real "
            "numbers. Convert it, for example with x.astype(numpy.float32)."
        )
    if array.ndim == 3:
        n_samples, height, width = array.shape
        image_shape = (int(height), int(width))
        array = array.reshape(n_samples, height * width)
    elif array.ndim == 2:
        image_shape = _square_image_shape(array.shape[1])
    else:
        raise InputError(
            f"{source} has shape {array.shape}, but deepgen needs 2-D "
            "rows (n_samples, n_features) or 3-D images (n_samples, height, width)."
        )
    if array.shape[1] == 0:
        raise InputError(f"{source} has no feature columns.")

    if array.dtype == np.uint8:
        x = _scale_uint8(array)
    else:
        x = array.astype(np.float32)
    not_finite = ~np.isfinite(x)
    if not_finite.any():
        first_row = int(np.flatnonzero(not_finite.any(axis=1))[0])
        raise InputError(
            f"{source} contains {int(not_finite.sum())} NaN or infinite "
            f"values as float32, the first in {describe_row(first_row)}. Replace or "
            "remove them."
        )
    return x, image_shape


def _square_image_shape(n_features: int) -> tuple[int, int] | None:
    side = int(np.sqrt(n_features) + 0.5)
    if n_features >= 4 and side * side == n_features:
        return (side, side)
    return None


def _validate_labels(
    source: str,
    labels: np.ndarray | None,
    n_rows: int,
    describe_row: Callable[[int], str],
) -> np.ndarray | None:
    """Check labels and convert them to int64 of shape (n_rows,)."""
    if labels is None:
        return None
    if labels.ndim != 1 or len(labels) != n_rows:
        raise InputError(
            f"{source} has shape {labels.shape}, but the features have "
            f"{n_rows} rows, so ({n_rows},) labels are expected."
        )
    if np.issubdtype(labels.dtype, np.floating):
        not_integer = ~np.isfinite(labels) | (labels != np.round(labels))
        if not_integer.any():
            first_row = int(np.flatnonzero(not_integer)[0])
            raise InputError(
                f"{source} contains {int(not_integer.sum())} labels that "
                f"are not integers, the first {float(labels[first_row]):g} in "
                f"{describe_row(first_row)}. Labels must be class numbers 0, 1, 2, ..."
            )
    elif not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise InputError(
            f"{source} has dtype {labels.dtype}, but labels must be "
            "integers 0, 1, 2, ... Map class names to numbers first."
        )

    labels = labels.astype(np.int64)
    negative = labels < 0
    if negative.any():
        first_row = int(np.flatnonzero(negative)[0])
        raise InputError(
            f"{source} contains {int(negative.sum())} negative labels, "
            f"the first {int(labels[first_row])} in {describe_row(first_row)}. Labels "
            "must be class numbers 0, 1, 2, ..."
        )
    too_large = labels >= MAX_CLASSES
    if too_large.any():
        first_row = int(np.flatnonzero(too_large)[0])
        largest = int(labels.max())
        raise InputError(
            f"{source} has labels up to {largest:,}, which would mean "
            f"{largest + 1:,} classes, but deepgen accepts at most {MAX_CLASSES:,} "
            f"({int(too_large.sum()):,} labels are {MAX_CLASSES:,} or more, the first "
            f"in {describe_row(first_row)}). Labels must be numbered 0..K-1 for K "
            "classes, so renumber them with one mapping for all splits: with "
            "classes = numpy.unique(all_labels), each label becomes "
            "numpy.searchsorted(classes, label)."
        )
    return labels


# --- Fingerprints of user files --------------------------------------------------


def fingerprint_user_file(path: str | os.PathLike[str], dataset: Dataset) -> dict:
    """Describe a user file and the data read from it, so later changes are found.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` or ``.csv`` file that ``dataset`` was loaded from.
    dataset : Dataset
        The data read from ``path`` by :func:`load_user_file`.

    Returns
    -------
    dict
        ``sha256`` and ``size_bytes`` of the file, ``data_sha256`` of the
        arrays read from it, and ``n_features``, ``n_classes``, ``n_train``
        and ``n_test`` of the data. The dict can be stored as JSON.
    """
    path = Path(path).expanduser()
    return {
        "sha256": file_sha256(path),
        "size_bytes": path.stat().st_size,
        "data_sha256": _data_sha256(dataset),
        "n_features": dataset.n_features,
        "n_classes": dataset.n_classes,
        "n_train": len(dataset.x_train),
        "n_test": len(dataset.x_test),
    }


def load_fingerprinted_file(path: str | os.PathLike[str], fingerprint: dict) -> Dataset:
    """Load a user file and check that it still matches ``fingerprint``.

    The file passes when its bytes are unchanged, or when it was saved again
    with the same arrays (a CSV file written with other number formatting,
    say).

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` or ``.csv`` file.
    fingerprint : dict
        What :func:`fingerprint_user_file` returned when the file was first used.

    Returns
    -------
    Dataset

    Raises
    ------
    InputError
        If the file is missing, invalid, or contains other data than
        ``fingerprint`` describes, or if ``fingerprint`` is damaged.
    """
    path = Path(path).expanduser()
    _check_fingerprint(path, fingerprint)
    if not path.is_file():
        return load_user_file(path)  # raises "not found"
    same_size = path.stat().st_size == fingerprint["size_bytes"]
    if same_size and file_sha256(path) == fingerprint["sha256"]:
        return load_user_file(path)

    changed = f"data file {path} changed since the run was trained on it."
    fix = (
        f"Restore the original file (SHA-256 {fingerprint['sha256']}), or train a new "
        f"run on the new data with `deepgen train --dataset {path}`."
    )
    try:
        dataset = load_user_file(path)
    except InputError as error:
        raise InputError(f"{changed} {fix} Reading it now fails: {error}") from None
    if _data_sha256(dataset) == fingerprint["data_sha256"]:
        logger.info("%s was saved again with the same data", path)
        return dataset
    was = _describe_fingerprint(fingerprint)
    now = _describe_fingerprint(fingerprint_user_file(path, dataset))
    if was == now:
        difference = f"It still has {now}, but other values."
    else:
        difference = f"It had {was} and now has {now}."
    raise InputError(f"{changed} {difference} {fix}")


_FINGERPRINT_FIELDS = {
    "sha256": str,
    "size_bytes": int,
    "data_sha256": str,
    "n_features": int,
    "n_classes": (int, type(None)),
    "n_train": int,
    "n_test": int,
}


def _check_fingerprint(path: Path, fingerprint: dict) -> None:
    damaged = not isinstance(fingerprint, dict) or any(
        not isinstance(fingerprint.get(key), kind)
        for key, kind in _FINGERPRINT_FIELDS.items()
    )
    if damaged:
        raise InputError(
            f"the fingerprint of data file {path} in the run's config.json is "
            "damaged, so deepgen cannot check that the file is the one the run was "
            "trained on. Train a new run on the file."
        )


def _describe_fingerprint(fingerprint: dict) -> str:
    n_classes = fingerprint["n_classes"]
    labels = "no labels" if n_classes is None else f"{n_classes} classes"
    return (
        f"{fingerprint['n_train']} training and {fingerprint['n_test']} held-out rows "
        f"of {fingerprint['n_features']} features with {labels}"
    )


def _data_sha256(dataset: Dataset) -> str:
    """Hash the dtype, shape and values of every array of ``dataset``."""
    digest = hashlib.sha256()
    for name in ("x_train", "y_train", "x_test", "y_test"):
        array = getattr(dataset, name)
        if array is None:
            digest.update(f"{name}:none;".encode())
            continue
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


# --- Binarisation ----------------------------------------------------------------


def binarize(
    x: np.ndarray, mode: str, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Convert intensities in [0, 1] to binary values, or return them unchanged.

    deepgen itself trains on the intensities as Bernoulli probabilities (mode
    ``"none"``). The other modes are for users who want binary data.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_features)
        Intensities, usually in [0, 1].
    mode : {"none", "threshold", "stochastic"}
        ``"none"`` returns ``x`` itself. ``"threshold"`` sets values >= 0.5 to 1
        and the rest to 0. ``"stochastic"`` sets each value to 1 with
        probability equal to the value, which must then lie in [0, 1].
    rng : numpy.random.Generator, optional
        Random generator for ``"stochastic"``. A fresh unseeded generator is
        used when None, so pass one for reproducible results.

    Returns
    -------
    ndarray of shape (n_samples, n_features)
        Values in {0, 1}, with the dtype of ``x`` when it is floating point
        and float32 otherwise.

    Raises
    ------
    InputError
        If the mode is unknown, or ``"stochastic"`` gets values outside [0, 1].
    """
    if mode not in BINARIZE_MODES:
        raise InputError(
            f"unknown binarisation mode {mode!r}. Valid modes are "
            f"{', '.join(BINARIZE_MODES)}."
        )
    if mode == "none":
        return x

    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float32)
    if mode == "threshold":
        return (x >= 0.5).astype(dtype)

    if x.size and (x.min() < 0 or x.max() > 1):
        raise InputError(
            f"stochastic binarisation needs probabilities in [0, 1], but the values "
            f"range from {x.min()} to {x.max()}. Scale the data to [0, 1] first."
        )
    if rng is None:
        rng = np.random.default_rng()
    return (rng.random(x.shape) < x).astype(dtype)

"""Tests for deepgen_core.data: built-in datasets, IDX parsing and user files."""

import gzip
import importlib.util
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepgen_core import data
from deepgen_core.data import (
    DATASET_NAMES,
    IMAGE_MAGIC,
    LABEL_MAGIC,
    MNIST10K_SHA256,
    binarize,
    default_data_dir,
    load_dataset,
    load_user_file,
    read_idx,
    verify_files,
)
from deepgen_core.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist(shared_data_dir):
    """Full MNIST, located through DEEPGEN_DATA_DIR."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEEPGEN_DATA_DIR", str(shared_data_dir))
        return load_dataset("mnist")


@pytest.fixture(scope="module")
def mnist_train_images(shared_data_dir):
    """Raw MNIST training images, shape (60000, 28, 28), uint8."""
    return read_idx(shared_data_dir / "mnist" / "train-images-idx3-ubyte.gz")


@pytest.fixture(scope="module")
def mnist10k():
    return load_dataset("mnist-10k")


def write_idx(path, array, magic=None, compress=False):
    """Write a uint8 array as an IDX file, optionally gzip-compressed."""
    if magic is None:
        magic = 0x0800 | array.ndim
    header = magic.to_bytes(4, "big")
    header += b"".join(size.to_bytes(4, "big") for size in array.shape)
    content = header + array.astype(np.uint8).tobytes()
    if compress:
        content = gzip.compress(content)
    path.write_bytes(content)
    return path


# --- mnist-10k -------------------------------------------------------------------


def test_mnist10k_split_shapes(mnist10k):
    assert mnist10k.name == "mnist-10k"
    assert mnist10k.x_train.shape == (8000, 784)
    assert mnist10k.x_test.shape == (2000, 784)
    assert mnist10k.y_train.shape == (8000,)
    assert mnist10k.y_test.shape == (2000,)
    assert mnist10k.image_shape == (28, 28)
    assert mnist10k.n_classes == 10
    assert mnist10k.n_features == 784


def test_mnist10k_dtypes_and_range(mnist10k):
    assert mnist10k.x_train.dtype == np.float32
    assert mnist10k.x_test.dtype == np.float32
    assert mnist10k.y_train.dtype == np.int64
    assert mnist10k.x_train.min() == 0.0
    assert mnist10k.x_train.max() == 1.0
    assert mnist10k.x_test.min() == 0.0
    assert mnist10k.x_test.max() == 1.0


def test_mnist10k_first_train_labels(mnist10k):
    assert mnist10k.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_mnist10k_matches_idx_rows(mnist10k, mnist_train_images):
    train_pixels = mnist_train_images[:8000].reshape(8000, 784)
    held_out_pixels = mnist_train_images[8000:10000].reshape(2000, 784)
    np.testing.assert_array_equal(mnist10k.x_train, train_pixels / np.float32(255))
    np.testing.assert_array_equal(mnist10k.x_test, held_out_pixels / np.float32(255))


def test_mnist10k_asset_sum_matches_constant():
    assert data.file_sha256(data.MNIST10K_PATH) == MNIST10K_SHA256
    assert verify_files("mnist-10k") == [data.MNIST10K_PATH]


def test_mnist10k_tampered_asset_rejected(tmp_path, monkeypatch):
    tampered = tmp_path / "mnist-10k.npz"
    content = bytearray(data.MNIST10K_PATH.read_bytes())
    content[len(content) // 2] ^= 0xFF
    tampered.write_bytes(bytes(content))
    monkeypatch.setattr(data, "MNIST10K_PATH", tampered)

    with pytest.raises(InputError, match="failed its SHA-256 checksum") as excinfo:
        load_dataset("mnist-10k")
    assert str(tampered) in str(excinfo.value)
    assert "scripts/build_mnist10k.py" in str(excinfo.value)


def test_mnist10k_missing_asset_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MNIST10K_PATH", tmp_path / "absent.npz")
    with pytest.raises(InputError, match=r"absent\.npz not found"):
        load_dataset("mnist-10k")


def test_build_script_reproduces_asset(tmp_path, shared_data_dir):
    spec = importlib.util.spec_from_file_location(
        "build_mnist10k", REPO_ROOT / "scripts" / "build_mnist10k.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    out = tmp_path / "mnist-10k.npz"
    digest = script.build(shared_data_dir / "mnist", out)

    assert digest == MNIST10K_SHA256
    assert out.read_bytes() == data.MNIST10K_PATH.read_bytes()


# --- mnist and fashion-mnist --------------------------------------------------


def test_mnist_standard_split(mnist):
    assert mnist.x_train.shape == (60000, 784)
    assert mnist.x_test.shape == (10000, 784)
    assert mnist.x_train.dtype == np.float32
    assert mnist.image_shape == (28, 28)
    assert mnist.n_classes == 10
    assert mnist.x_train.min() == 0.0
    assert mnist.x_train.max() == 1.0


def test_mnist_label_counts(mnist):
    assert np.bincount(mnist.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(mnist.y_test).tolist() == MNIST_TEST_COUNTS
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_mnist_first_rows_match_mnist10k(mnist, mnist10k):
    np.testing.assert_array_equal(mnist.x_train[:8000], mnist10k.x_train)


def test_fashion_mnist_loads_from_data_dir(shared_data_dir):
    fashion = load_dataset("fashion-mnist", data_dir=shared_data_dir)

    assert fashion.x_train.shape == (60000, 784)
    assert fashion.x_test.shape == (10000, 784)
    assert fashion.image_shape == (28, 28)
    assert np.bincount(fashion.y_train).tolist() == [6000] * 10
    assert np.bincount(fashion.y_test).tolist() == [1000] * 10
    assert fashion.y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


def test_verify_files_returns_four_paths(shared_data_dir):
    paths = verify_files("mnist", shared_data_dir)
    assert [path.name for path in paths] == list(data.IDX_SHA256["mnist"])
    assert all(path.parent == shared_data_dir / "mnist" for path in paths)


def test_missing_idx_file_message(tmp_path):
    with pytest.raises(InputError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path)
    message = str(excinfo.value)
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in message
    assert "DEEPGEN_DATA_DIR" in message
    assert "`deepgen data download mnist`" in message


def test_uncompressed_idx_file_is_named(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((2, 28, 28)))
    with pytest.raises(InputError) as excinfo:
        verify_files("mnist", tmp_path)
    message = str(excinfo.value)
    assert f"not found: {folder / 'train-images-idx3-ubyte.gz'}, " in message
    assert "contains the uncompressed file(s) train-images-idx3-ubyte, " in message
    assert "reads only the published .gz files" in message


def test_idx_sum_mismatch_rejected(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for filename in data.IDX_SHA256["fashion-mnist"]:
        (folder / filename).write_bytes(b"not the published file")

    with pytest.raises(InputError, match="has SHA-256 .*, expected ") as excinfo:
        verify_files("fashion-mnist", tmp_path)
    assert "`deepgen data download fashion-mnist`" in str(excinfo.value)


def test_default_data_dir_uses_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPGEN_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path


def test_default_data_dir_without_env(monkeypatch):
    monkeypatch.delenv("DEEPGEN_DATA_DIR", raising=False)
    assert default_data_dir() == Path.home() / ".cache" / "deepgen" / "data"


def test_download_skips_verified_files(tmp_path, shared_data_dir, monkeypatch):
    # Files already present with the right sums must not touch the network.
    shutil.copytree(shared_data_dir / "mnist", tmp_path / "mnist")

    def fail_urlopen(*args, **kwargs):
        raise AssertionError("download() opened a URL for a verified file")

    monkeypatch.setattr(data.urllib.request, "urlopen", fail_urlopen)
    paths = data.download("mnist", tmp_path)
    assert len(paths) == 4


def test_download_writes_verified_file(tmp_path, shared_data_dir, monkeypatch):
    # Three files are present, so download() fetches only the test labels.
    shutil.copytree(shared_data_dir / "mnist", tmp_path / "mnist")
    missing = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    content = missing.read_bytes()
    missing.unlink()
    requested_urls = []

    def fake_urlopen(request, timeout):
        requested_urls.append(request.full_url)
        return io.BytesIO(content)

    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen)
    paths = data.download("mnist", tmp_path)

    assert requested_urls == [
        data.DOWNLOAD_MIRRORS["mnist"][0] + "t10k-labels-idx1-ubyte.gz"
    ]
    assert missing.read_bytes() == content
    assert len(paths) == 4
    assert list((tmp_path / "mnist").glob("*.part")) == []


def test_download_rejects_wrong_sum(tmp_path, monkeypatch):
    def fake_urlopen(request, timeout):
        return io.BytesIO(b"an error page instead of the file")

    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(InputError, match="failed from every mirror") as excinfo:
        data.download("fashion-mnist", tmp_path)

    assert "SHA-256 is" in str(excinfo.value)
    assert list((tmp_path / "fashion-mnist").iterdir()) == []


# --- read_idx ------------------------------------------------------------------


def test_read_idx_plain_and_gzip_roundtrip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    plain = write_idx(tmp_path / "plain-idx3-ubyte", images)
    packed = write_idx(tmp_path / "packed-idx3-ubyte.gz", images, compress=True)

    for path in (plain, packed):
        result = read_idx(path, expected_magic=IMAGE_MAGIC)
        assert result.dtype == np.uint8
        np.testing.assert_array_equal(result, images)


def test_read_idx_label_file_as_images(tmp_path):
    labels = np.array([5, 0, 4], dtype=np.uint8)
    mnist_dir = tmp_path / "mnist"
    mnist_dir.mkdir()
    path = write_idx(mnist_dir / "train-images-idx3-ubyte.gz", labels, compress=True)

    with pytest.raises(
        InputError, match="has magic 0x00000801, expected 0x00000803 for images"
    ) as excinfo:
        read_idx(path, expected_magic=IMAGE_MAGIC)
    assert "`deepgen data download mnist`" in str(excinfo.value)


def test_read_idx_image_file_as_labels(tmp_path):
    images = np.zeros((2, 2, 2), dtype=np.uint8)
    path = write_idx(tmp_path / "labels.idx", images)
    with pytest.raises(InputError, match="expected 0x00000801 for labels"):
        read_idx(path, expected_magic=LABEL_MAGIC)


def test_read_idx_invalid_magic(tmp_path):
    path = tmp_path / "notes.idx"
    path.write_bytes(b"hello world, not idx")
    with pytest.raises(InputError, match="not a valid IDX magic number"):
        read_idx(path)


def test_read_idx_truncated_data(tmp_path):
    images = np.ones((3, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / "cut.idx", images)
    path.write_bytes(path.read_bytes()[:-100])

    with pytest.raises(
        InputError, match=r"is truncated.*2352 data bytes were expected, but 2252"
    ):
        read_idx(path)


def test_read_idx_trailing_bytes(tmp_path):
    labels = np.arange(4, dtype=np.uint8)
    path = write_idx(tmp_path / "long.idx", labels)
    path.write_bytes(path.read_bytes() + b"\x00\x00")
    with pytest.raises(InputError, match="has trailing bytes.*expected, but 6"):
        read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path):
    labels = np.arange(200, dtype=np.uint8)
    path = write_idx(tmp_path / "labels.gz", labels, compress=True)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])

    with pytest.raises(InputError, match="is not valid gzip"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"absent\.gz not found"):
        read_idx(tmp_path / "absent.gz")


def test_read_idx_big_endian_int16(tmp_path):
    values = np.array([[1, -2], [300, -400]], dtype=">i2")
    path = tmp_path / "values.idx"
    header = (0x00000B02).to_bytes(4, "big") + (2).to_bytes(4, "big") * 2
    path.write_bytes(header + values.tobytes())

    result = read_idx(path)
    assert result.dtype == np.int16
    assert result.tolist() == [[1, -2], [300, -400]]


# --- digits and names ----------------------------------------------------------


def test_digits_split():
    digits = load_dataset("digits")
    assert digits.x_train.shape == (1437, 64)
    assert digits.x_test.shape == (360, 64)
    assert digits.x_train.dtype == np.float32
    assert digits.image_shape == (8, 8)
    assert digits.n_classes == 10
    assert digits.x_train.min() == 0.0
    assert digits.x_train.max() == 1.0
    assert digits.y_train[:5].tolist() == [0, 1, 2, 3, 4]


def test_unknown_name_lists_valid_names():
    with pytest.raises(InputError, match="unknown dataset 'mnist10k'") as excinfo:
        load_dataset("mnist10k")
    message = str(excinfo.value)
    for name in DATASET_NAMES:
        assert name in message
    assert ".npz or .csv" in message


def test_unknown_name_suggests_close_name():
    with pytest.raises(InputError, match="Did you mean 'fashion-mnist'"):
        load_dataset("Fashion_MNIST")


def four_dimensional_npz(folder):
    path = folder / "cube.npz"
    np.savez(path, x=np.zeros((3, 2, 2, 2)))
    return path


@pytest.mark.parametrize(
    ("make_name", "start"),
    [
        (lambda folder: "mnist10k", "unknown dataset 'mnist10k'"),
        (lambda folder: str(folder / "missing.npz"), "data file "),
        (four_dimensional_npz, "array 'x' in NPZ file "),
    ],
    ids=["unknown-name", "missing-file", "bad-array"],
)
def test_data_errors_start_lowercase(tmp_path, make_name, start):
    with pytest.raises(InputError) as caught:
        load_dataset(make_name(tmp_path))
    assert str(caught.value).startswith(start)


def test_missing_user_file_not_found(tmp_path):
    with pytest.raises(InputError, match=r"missing\.npz not found"):
        load_dataset(str(tmp_path / "missing.npz"))


def test_unknown_extension_rejected(tmp_path):
    path = tmp_path / "rows.txt"
    path.write_text("1,2\n3,4\n")
    with pytest.raises(InputError, match=r"extension '\.txt'.*\.npz and \.csv"):
        load_dataset(str(path))


@pytest.mark.parametrize(
    ("make_name", "problem"),
    [
        (lambda folder: "", "no dataset given."),
        (lambda folder: str(folder), "is a folder, but a data file name is needed."),
        (lambda folder: str(folder / "rows"), "has no extension."),
    ],
    ids=["empty", "folder", "no-extension"],
)
def test_missing_file_name_lists_choices(tmp_path, make_name, problem):
    (tmp_path / "rows").write_text("1,2\n3,4\n")
    with pytest.raises(InputError) as caught:
        load_dataset(make_name(tmp_path))
    message = str(caught.value)
    assert problem in message
    assert "Pass the path of a .npz or .csv file, or a dataset name: " in message
    for name in DATASET_NAMES:
        assert name in message
    assert "(none)" not in message


# --- CSV files ------------------------------------------------------------------


def test_csv_header_with_label_column(tmp_path):
    path = tmp_path / "points.csv"
    rows = [f"{i},{i * 0.5},{i % 3}" for i in range(10)]
    path.write_text("a,b,label\n" + "\n".join(rows) + "\n")

    dataset = load_dataset(str(path))

    assert dataset.name == "points.csv"
    assert dataset.x_train.shape == (8, 2)
    assert dataset.x_test.shape == (2, 2)
    assert dataset.x_train.dtype == np.float32
    assert dataset.y_train.dtype == np.int64
    assert dataset.y_train.tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    assert dataset.y_test.tolist() == [2, 0]
    assert dataset.n_classes == 3
    assert dataset.image_shape is None
    assert dataset.x_test[:, 1].tolist() == [4.0, 4.5]


def test_csv_label_column_in_middle(tmp_path):
    path = tmp_path / "middle.csv"
    path.write_text("f1,Label,f2\n1,0,2\n3,1,4\n5,1,6\n")
    dataset = load_user_file(path)
    assert dataset.x_train.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert dataset.y_train.tolist() == [0, 1]
    assert dataset.x_test.tolist() == [[5.0, 6.0]]


def test_csv_without_header_is_unlabelled(tmp_path):
    path = tmp_path / "square.csv"
    path.write_text("\n".join(",".join(["0.25"] * 4) for _ in range(5)) + "\n")
    dataset = load_user_file(path)
    assert dataset.y_train is None
    assert dataset.n_classes is None
    assert dataset.image_shape == (2, 2)
    assert dataset.x_train.shape == (4, 4)
    assert dataset.x_test.shape == (1, 4)


def test_csv_text_cell_names_row_and_column(tmp_path):
    path = tmp_path / "typo.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1\n5,oops,1\n")
    with pytest.raises(InputError, match="text 'oops' at row 4, column 2"):
        load_user_file(path)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("a;b;label\n0.1;0.2;1\n0.3;0.4;0\n", "semicolons"),
        ("a\tb\n0.1\t0.2\n0.3\t0.4\n", "tabs"),
    ],
    ids=["semicolons", "tabs"],
)
def test_csv_other_separator_asks_for_commas(tmp_path, text, name):
    path = tmp_path / "separated.csv"
    path.write_text(text)
    with pytest.raises(InputError, match="at row 2, column 1") as caught:
        load_user_file(path)
    message = str(caught.value)
    assert f"The cell contains {name}, but the cells of a CSV file" in message
    assert "save the file again with commas as the separator." in message


def test_csv_empty_cell_names_row_and_column(tmp_path):
    path = tmp_path / "gap.csv"
    path.write_text("1,2\n3,\n5,6\n")
    with pytest.raises(InputError, match="empty cell at row 2, column 2"):
        load_user_file(path)


def test_csv_trailing_comma_is_empty_cell(tmp_path):
    path = tmp_path / "trailing.csv"
    path.write_text("1,2,\n3,4,\n")
    with pytest.raises(InputError, match="empty cell at row 1, column 3"):
        load_user_file(path)


def test_csv_ragged_row(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("1,2,3\n4,5,6\n7,8\n")
    with pytest.raises(InputError, match="2 columns in row 3, but 3 in row 1"):
        load_user_file(path)


def test_csv_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("\n\n")
    with pytest.raises(InputError, match="is empty"):
        load_user_file(path)


def test_csv_header_only(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("a,b,label\n")
    with pytest.raises(InputError, match="header row but no data rows"):
        load_user_file(path)


def test_csv_nan_names_count_and_row(tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("a,b\n1,2\n3,nan\ninf,nan\n")
    with pytest.raises(
        InputError, match="3 NaN or infinite values, the first in row 3"
    ):
        load_user_file(path)


def test_csv_negative_label(tmp_path):
    path = tmp_path / "negative.csv"
    path.write_text("a,label\n1,0\n2,-1\n3,1\n")
    with pytest.raises(InputError, match="1 negative labels, the first -1 in row 3"):
        load_user_file(path)


def test_csv_fractional_label(tmp_path):
    path = tmp_path / "fraction.csv"
    path.write_text("a,label\n1,0\n2,1.5\n3,1\n")
    with pytest.raises(InputError, match="labels that are not integers") as caught:
        load_user_file(path)
    assert "the first 1.5 in row 3." in str(caught.value)


# --- NPZ files ------------------------------------------------------------------


def test_npz_x_only_holds_out_last_fifth(tmp_path):
    path = tmp_path / "rows.npz"
    x = np.arange(14 * 3, dtype=np.float64).reshape(14, 3)
    np.savez(path, x=x)

    dataset = load_user_file(path)

    # 20% of 14 rows is 2.8, rounded down to 2.
    assert dataset.x_train.shape == (12, 3)
    assert dataset.x_test.shape == (2, 3)
    np.testing.assert_array_equal(dataset.x_test, x[12:].astype(np.float32))
    assert dataset.y_train is None
    assert dataset.image_shape is None


def test_npz_two_rows_hold_out_one(tmp_path):
    path = tmp_path / "pair.npz"
    np.savez(path, x=np.ones((2, 5)))
    dataset = load_user_file(path)
    assert len(dataset.x_train) == 1
    assert len(dataset.x_test) == 1


def test_npz_one_row_rejected(tmp_path):
    path = tmp_path / "single.npz"
    np.savez(path, x=np.ones((1, 5)))
    with pytest.raises(InputError, match="1 row.*at least 2"):
        load_user_file(path)


def test_npz_uint8_images_flattened_and_scaled(tmp_path):
    path = tmp_path / "images.npz"
    images = np.full((5, 3, 4), 255, dtype=np.uint8)
    images[:, 0, 0] = 51
    labels = np.array([0, 1, 2, 3, 4])
    np.savez(path, x=images, y=labels)

    dataset = load_user_file(path)

    assert dataset.image_shape == (3, 4)
    assert dataset.x_train.shape == (4, 12)
    assert dataset.x_train[0, 0] == pytest.approx(0.2)
    assert dataset.x_train[0, 1] == 1.0
    assert dataset.n_classes == 5
    assert dataset.y_test.tolist() == [4]


def test_npz_explicit_split(tmp_path):
    path = tmp_path / "split.npz"
    np.savez(
        path,
        x_train=np.zeros((6, 9)),
        y_train=np.array([0, 1, 0, 1, 0, 1]),
        x_test=np.ones((3, 9)),
        y_test=np.array([2, 2, 2]),
    )

    dataset = load_user_file(path)

    assert dataset.x_train.shape == (6, 9)
    assert dataset.x_test.shape == (3, 9)
    assert dataset.image_shape == (3, 3)
    assert dataset.n_classes == 3


def test_npz_x_train_without_test_is_split(tmp_path):
    path = tmp_path / "train-only.npz"
    np.savez(path, x_train=np.arange(10.0).reshape(10, 1), y_train=np.arange(10))
    dataset = load_user_file(path)
    assert dataset.x_train.shape == (8, 1)
    assert dataset.y_test.tolist() == [8, 9]


def test_npz_feature_mismatch_between_splits(tmp_path):
    path = tmp_path / "mismatch.npz"
    np.savez(path, x_train=np.zeros((4, 3)), x_test=np.zeros((2, 4)))
    with pytest.raises(InputError, match="3 features per row in x_train but 4"):
        load_user_file(path)


def test_npz_labels_for_one_split_only(tmp_path):
    path = tmp_path / "half-labelled.npz"
    np.savez(
        path, x_train=np.zeros((4, 3)), y_train=np.zeros(4), x_test=np.zeros((2, 3))
    )
    with pytest.raises(InputError, match="contains y_train but not y_test"):
        load_user_file(path)


def test_npz_nan_names_count_and_first_row(tmp_path):
    path = tmp_path / "nan.npz"
    x = np.zeros((10, 4))
    x[3, 1] = np.nan
    x[7, 0] = np.inf
    x[7, 2] = np.nan
    np.savez(path, x=x)
    with pytest.raises(
        InputError, match=r"contains 3 NaN or infinite values .*first in row index 3"
    ):
        load_user_file(path)


def test_npz_object_array_not_unpickled(tmp_path):
    marker = tmp_path / "unpickled"

    class Trap:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([Trap(), Trap()], dtype=object))

    with pytest.raises(InputError, match="'x' in NPZ file .* is an object array"):
        load_user_file(path)
    assert not marker.exists()


def test_npz_unknown_keys_rejected(tmp_path):
    path = tmp_path / "keys.npz"
    np.savez(path, features=np.zeros((3, 2)))
    with pytest.raises(InputError, match=r"arrays \['features'\].*x_train"):
        load_user_file(path)


def test_npz_label_length_mismatch(tmp_path):
    path = tmp_path / "labels.npz"
    np.savez(path, x=np.zeros((5, 2)), y=np.zeros(4, dtype=np.int64))
    with pytest.raises(InputError, match=r"shape \(4,\).*5 rows"):
        load_user_file(path)


def test_npz_huge_labels_rejected(tmp_path):
    path = tmp_path / "ybig.npz"
    y_train = np.array([0, 10**9, 2 * 10**9, 0, 10**9, 0])
    y_test = np.array([2 * 10**9, 0])
    np.savez(
        path,
        x_train=np.zeros((6, 3)),
        y_train=y_train,
        x_test=np.zeros((2, 3)),
        y_test=y_test,
    )
    with pytest.raises(InputError) as caught:
        load_user_file(path)
    message = str(caught.value)
    assert message.startswith("array 'y_train' in NPZ file ")
    assert "has labels up to 2,000,000,000, which would mean 2,000,000,001 " in message
    assert (
        "accepts at most 1,000 (3 labels are 1,000 or more, the first in row index 1)"
        in message
    )
    assert "Labels must be numbered 0..K-1" in message

    classes = np.unique(np.concatenate([y_train, y_test]))
    np.savez(
        path,
        x_train=np.zeros((6, 3)),
        y_train=np.searchsorted(classes, y_train),
        x_test=np.zeros((2, 3)),
        y_test=np.searchsorted(classes, y_test),
    )
    renumbered = load_user_file(path)
    assert renumbered.n_classes == 3
    assert renumbered.y_train.tolist() == [0, 1, 2, 0, 1, 0]
    assert renumbered.y_test.tolist() == [2, 0]


def test_label_limit_is_max_classes(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("a,label\n0.5,0\n0.5,999\n0.5,1\n")
    assert load_user_file(path).n_classes == data.MAX_CLASSES
    path.write_text("a,label\n0.5,0\n0.5,1000\n0.5,1\n")
    with pytest.raises(
        InputError, match="the label column of CSV file .* up to 1,000,"
    ):
        load_user_file(path)


def test_npz_string_features_rejected(tmp_path):
    path = tmp_path / "text.npz"
    np.savez(path, x=np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(InputError, match="has dtype <U1.*real numbers"):
        load_user_file(path)


def test_npz_four_dimensional_rejected(tmp_path):
    path = tmp_path / "video.npz"
    np.savez(path, x=np.zeros((3, 2, 2, 2)))
    with pytest.raises(InputError, match=r"shape \(3, 2, 2, 2\).*2-D rows"):
        load_user_file(path)


def test_npz_not_a_zip_rejected(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"this is not an archive")
    with pytest.raises(InputError, match="is not an NPZ archive") as caught:
        load_user_file(path)
    assert "allow_pickle" not in str(caught.value)


def test_empty_npz_rejected(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="is not an NPZ archive"):
        load_user_file(path)


# --- binarize ------------------------------------------------------------------


def test_binarize_none_returns_input():
    x = np.array([[0.2, 0.7]], dtype=np.float32)
    assert binarize(x, "none") is x


def test_binarize_threshold():
    x = np.array([[0.0, 0.49, 0.5, 1.0]], dtype=np.float32)
    result = binarize(x, "threshold")
    assert result.dtype == np.float32
    assert result.tolist() == [[0.0, 0.0, 1.0, 1.0]]


def test_binarize_stochastic_matches_probabilities():
    x = np.full((2000, 50), 0.3, dtype=np.float32)
    x[:, :10] = 0.0
    x[:, 10:20] = 1.0

    result = binarize(x, "stochastic", np.random.default_rng(0))

    assert result.dtype == np.float32
    assert set(np.unique(result).tolist()) == {0.0, 1.0}
    assert result[:, :10].sum() == 0
    assert result[:, 10:20].min() == 1.0
    assert result[:, 20:].mean() == pytest.approx(0.3, abs=0.01)


def test_binarize_stochastic_seeded_repeats():
    x = np.random.default_rng(1).random((20, 20)).astype(np.float32)
    first = binarize(x, "stochastic", np.random.default_rng(7))
    second = binarize(x, "stochastic", np.random.default_rng(7))
    np.testing.assert_array_equal(first, second)


def test_binarize_stochastic_rejects_out_of_range():
    x = np.array([[0.5, 1.5]], dtype=np.float32)
    with pytest.raises(InputError, match=r"probabilities in \[0, 1\]"):
        binarize(x, "stochastic", np.random.default_rng(0))


def test_binarize_unknown_mode_lists_modes():
    x = np.zeros((1, 1), dtype=np.float32)
    with pytest.raises(
        InputError,
        match="unknown binarisation mode 'sample'.*none, threshold, stochastic",
    ):
        binarize(x, "sample")

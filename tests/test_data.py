import gzip
import pickle
import struct

import numpy as np
import pytest

from mdp_prune.engine import data
from mdp_prune.errors import UserError


def _write_idx(path, array, compress=True):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(raw)


def _fake_idx_folder(folder, n_train=120, n_test=30, compress=True):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    train_x = rng.integers(0, 256, (n_train, 28, 28))
    train_y = rng.integers(0, 10, n_train)
    _write_idx(folder / f"train-images-idx3-ubyte{suffix}", train_x, compress)
    _write_idx(folder / f"train-labels-idx1-ubyte{suffix}", train_y, compress)
    _write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_test, 28, 28)), compress)
    _write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n_test), compress)
    return train_x, train_y


@pytest.mark.parametrize("compress", [True, False])
def test_idx_reader_roundtrip(tmp_path, compress):
    train_x, train_y = _fake_idx_folder(tmp_path, compress=compress)
    suffix = ".gz" if compress else ""
    assert np.array_equal(data.read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}"), train_x)
    splits = data.DATASETS["fashion-mnist"](str(tmp_path))
    assert (splits.input_shape, splits.num_classes) == data.SHAPES["fashion-mnist"] == data.SHAPES["mnist"]
    assert len(splits.val_y) == 20 and len(splits.train_y) == 100 and len(splits.test_y) == 30
    assert abs(float(splits.train_x.mean())) < 1e-4  # standardised with training statistics
    # The validation examples are held out of the training set, not copied.
    train_labels = sorted(splits.train_y.tolist() + splits.val_y.tolist())
    assert train_labels == sorted(train_y.tolist())


def test_torchvision_layout_is_found(tmp_path):
    _fake_idx_folder(tmp_path / "MNIST" / "raw")
    assert len(data.DATASETS["mnist"](str(tmp_path)).test_y) == 30


def test_cifar_reader(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, n in [(f"data_batch_{i}", 20) for i in range(1, 6)] + [("test_batch", 10)]:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, n))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    splits = data.load_cifar10(str(tmp_path))
    assert (splits.input_shape, splits.num_classes) == data.SHAPES["cifar10"]
    assert len(splits.train_y) + len(splits.val_y) == 100 and len(splits.test_y) == 10


def test_damaged_files_are_clear_errors(tmp_path):
    _fake_idx_folder(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read IDX file"):
        data.DATASETS["fashion-mnist"](str(tmp_path))
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read CIFAR-10 batch"):
        data.load_cifar_folder(tmp_path / "cifar-10-batches-py")


def test_digits_split_is_fixed_and_proportional():
    a = data.load_digits()
    b = data.load_digits()
    n_train = len(a.train_y) + len(a.val_y)
    assert len(a.val_y) == round(n_train * 5 / 60) and len(a.test_y) == 360
    assert (a.input_shape, a.num_classes) == data.SHAPES["digits"]
    assert (a.val_x == b.val_x).all()

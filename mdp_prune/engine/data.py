"""Datasets, held in memory as tensors with a validation split carved out of the training set.

Batches are indexed directly from these tensors: on a CPU a DataLoader with workers costs more than the model.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mdp_prune.errors import UserError, lookup

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SPLIT_SEED = 0  # the train/validation split is fixed across run seeds: seeds vary the ticket, not the data


@dataclass(frozen=True)
class Splits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def to(self, device: torch.device) -> Splits:
        return Splits(*(t.to(device) for t in self.tensors()), num_classes=self.num_classes)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.train_x, self.train_y, self.val_x, self.val_y, self.test_x, self.test_y)


def _split(x: np.ndarray, y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, val_size: int,
           num_classes: int) -> Splits:
    """Hold out `val_size` training examples for validation, then standardise with training statistics."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    val, train = perm[:val_size], perm[val_size:]
    x = x.astype(np.float32)
    test_x = test_x.astype(np.float32)
    mean, std = x[train].mean(), x[train].std()
    tensor = lambda a: torch.from_numpy(np.ascontiguousarray((a - mean) / std, dtype=np.float32))  # noqa: E731
    label = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731
    return Splits(tensor(x[train]), label(y[train]), tensor(x[val]), label(y[val]),
                  tensor(test_x), label(test_y), num_classes)


def load_digits(data_dir: str = "") -> Splits:
    """scikit-learn's bundled 8x8 digits: 20 % test, and 5/60 of the rest for validation as in MNIST."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = bunch.images.reshape(-1, 1, 8, 8) / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, bunch.target, test_size=0.2, random_state=SPLIT_SEED, stratify=bunch.target
    )
    return _split(x_train, y_train, x_test, y_test, val_size=round(len(x_train) * 5 / 60), num_classes=10)


# --- IDX (MNIST, Fashion-MNIST) ---------------------------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype_code not in _IDX_TYPES:
            raise ValueError("bad magic number")
        shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        data = np.frombuffer(raw, dtype=_IDX_TYPES[dtype_code], offset=4 + 4 * ndim)
        return data.reshape(shape)
    except (OSError, ValueError, struct.error, EOFError) as e:
        raise UserError(f"cannot read IDX file {path}: {e}") from None


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def load_idx_folder(folder: Path, val_size: int = 5000) -> Splits:
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
    paths = [_find(folder, s) for s in stems]
    if any(p is None for p in paths):
        missing = [s for s, p in zip(stems, paths, strict=True) if p is None]
        raise UserError(f"{folder} lacks IDX files: {', '.join(missing)}")
    x, y, tx, ty = (read_idx(p) for p in paths)  # type: ignore[arg-type]
    return _split(x[:, None] / 255.0, y, tx[:, None] / 255.0, ty, val_size=min(val_size, len(x) // 6),
                  num_classes=10)


def _torchvision_idx(name: str, data_dir: str) -> Splits:
    """Fetch MNIST-like data through torchvision (needs internet once), then read its raw IDX files."""
    import torchvision

    root = Path(data_dir or "data")
    cls = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST}[name]
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as e:  # noqa: BLE001 - any download failure is the same user-facing problem
        raise UserError(f"cannot download {name} to {root} ({e}); pass --data-dir with its IDX files") from None
    return load_idx_folder(root / cls.__name__ / "raw")


def _idx_dataset(name: str, debian: Path | None) -> Callable[[str], Splits]:
    def load(data_dir: str = "") -> Splits:
        if data_dir:
            folder = Path(data_dir)
            if not folder.is_dir():
                raise UserError(f"data directory {folder} does not exist")
            for candidate in (folder, folder / "raw", folder / "MNIST" / "raw", folder / "FashionMNIST" / "raw"):
                if _find(candidate, "train-images-idx3-ubyte"):
                    return load_idx_folder(candidate)
            return _torchvision_idx(name, data_dir)
        if debian is not None and _find(debian, "train-images-idx3-ubyte"):
            return load_idx_folder(debian)
        return _torchvision_idx(name, data_dir)

    return load


# --- CIFAR-10 (python pickle batches) ---------------------------------------------------------------------


def load_cifar_folder(folder: Path, val_size: int = 5000) -> Splits:
    """Read the `cifar-10-batches-py` pickles: data_batch_1..5 and test_batch."""
    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            with open(folder / name, "rb") as f:
                d = pickle.load(f, encoding="latin1")
            return np.asarray(d["data"], np.uint8).reshape(-1, 3, 32, 32), np.asarray(d["labels"])
        except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as e:
            raise UserError(f"cannot read CIFAR-10 batch {folder / name}: {e}") from None

    train = [read(f"data_batch_{i}") for i in range(1, 6) if (folder / f"data_batch_{i}").is_file()]
    if not train or not (folder / "test_batch").is_file():
        raise UserError(f"{folder} lacks CIFAR-10 batches (data_batch_1..5, test_batch)")
    x = np.concatenate([t[0] for t in train])
    y = np.concatenate([t[1] for t in train])
    tx, ty = read("test_batch")
    return _split(x / 255.0, y, tx / 255.0, ty, val_size=min(val_size, len(x) // 10), num_classes=10)


def load_cifar10(data_dir: str = "") -> Splits:
    root = Path(data_dir or "data")
    if data_dir and not root.is_dir():
        raise UserError(f"data directory {root} does not exist")
    for candidate in (root, root / "cifar-10-batches-py"):
        if (candidate / "test_batch").is_file():
            return load_cifar_folder(candidate)
    import torchvision

    try:
        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot download cifar10 to {root} ({e}); pass --data-dir with its batches") from None
    return load_cifar_folder(root / "cifar-10-batches-py")


DATASETS: dict[str, Callable[[str], Splits]] = {
    "digits": load_digits,
    "fashion-mnist": _idx_dataset("fashion-mnist", DEBIAN_FASHION_MNIST),
    "mnist": _idx_dataset("mnist", None),
    "cifar10": load_cifar10,
}

# Input shape and number of classes of each dataset, known without loading it (for layer shapes); tests check
# them against what the loaders return.
SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "digits": ((1, 8, 8), 10),
    "fashion-mnist": ((1, 28, 28), 10),
    "mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}

_CACHE: dict[tuple[str, str], Splits] = {}


def load(name: str, data_dir: str = "") -> Splits:
    """Load a dataset by registry name; cached per process because grid cells share it."""
    loader = lookup(DATASETS, name, "dataset")
    key = (name, data_dir)
    if key not in _CACHE:
        _CACHE[key] = loader(data_dir)
    return _CACHE[key]

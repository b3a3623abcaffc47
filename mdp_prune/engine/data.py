"""Datasets, held in memory as tensors with a validation split carved out of the training set.

Batches are indexed directly from these tensors: on a CPU a DataLoader with workers costs more than the model.
"""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from mdp_prune.errors import UserError, lookup

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SPLIT_SEED = 0  # the train/validation split is fixed across run seeds: seeds vary the ticket, not the data


@dataclass(frozen=True)
class Splits:
    """Training, validation and test tensors, and the images the planner's proxy reads (`proxy_x`, `proxy_y`).

    By default the proxy reads validation itself. After `hold_out(n)` it reads the first n validation images,
    and `val_x`/`val_y` keep only the rest: every validation figure (selection, feedback, stopping, reports) is
    then measured on images the proxy never saw.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    proxy_x: torch.Tensor | None = None  # None: the proxy reads validation
    proxy_y: torch.Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    @property
    def n_proxy_examples(self) -> int:
        return len(self.val_y if self.proxy_y is None else self.proxy_y)

    def to(self, device: torch.device) -> Splits:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return dataclasses.replace(self, **{f.name: move(getattr(self, f.name)) for f in dataclasses.fields(self)
                                            if f.name != "num_classes"})

    def hold_out(self, n_examples: int) -> Splits:
        """The first `n_examples` validation images become the proxy's alone; validation keeps the rest."""
        return dataclasses.replace(self, val_x=self.val_x[n_examples:], val_y=self.val_y[n_examples:],
                                   proxy_x=self.val_x[:n_examples], proxy_y=self.val_y[:n_examples])

    def for_proxy(self) -> Splits:
        """These splits as a retraining proxy sees them: its validation figure is read on the proxy's images."""
        if self.proxy_x is None:
            return self
        return dataclasses.replace(self, val_x=self.proxy_x, val_y=self.proxy_y, proxy_x=None, proxy_y=None)

    def proxy_images(self, n_examples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The pruned proxy's fixed subset: the first `n_examples` of the proxy's images (all, if fewer)."""
        x, y = (self.val_x, self.val_y) if self.proxy_x is None else (self.proxy_x, self.proxy_y)
        assert y is not None
        return x[:n_examples], y[:n_examples]


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


# --- Checks shared by the file formats ----------------------------------------------------------------------


def _one_line(text: object) -> str:
    """Error text from numpy, pickle or torchvision can span lines; a UserError is printed as one."""
    return " ".join(str(text).split())


def _user_folder(data_dir: str) -> Path:
    """The folder named by --data-dir, or a UserError saying why it cannot be one."""
    folder = Path(data_dir)
    try:
        exists, is_dir = folder.exists(), folder.is_dir()
    except OSError as e:
        raise UserError(f"cannot open data directory {folder}: {_one_line(e.strerror or e)}") from None
    if not exists:
        raise UserError(f"data directory {folder} does not exist")
    if not is_dir:
        raise UserError(f"data directory {folder} is a file, not a folder")
    return folder


def _check_labels(path: Path, labels: np.ndarray, num_images: int, num_classes: int, where: str = "") -> None:
    """Labels index the output layer, so a float, negative or too large label would fail deep inside training."""
    if labels.ndim != 1:
        raise UserError(f"{path}: labels must be a 1-D list, got shape {labels.shape}")
    if len(labels) != num_images:
        raise UserError(f"{path} holds {len(labels)} labels for {num_images} images{where}")
    if labels.dtype.kind not in "ui":
        raise UserError(f"{path}: labels must be integers, got {labels.dtype}")
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise UserError(f"{path}: label {bad[0]} is outside 0..{num_classes - 1}")


# --- IDX (MNIST, Fashion-MNIST) ---------------------------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte")
# Where the files may sit inside --data-dir: flat, or as torchvision leaves them after a download.
_IDX_PLACES = (".", "raw", "MNIST/raw", "FashionMNIST/raw")


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
    except (OSError, ValueError, struct.error, EOFError, zlib.error) as e:
        raise UserError(f"cannot read IDX file {path}: {_one_line(e)}") from None


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_idx_pair(images_path: Path, labels_path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """An images file and its labels file, checked against each other and against `SHAPES[name]`."""
    shape, num_classes = SHAPES[name]
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise UserError(f"{images_path}: an IDX image file must be 3-D (count, height, width), got shape "
                        f"{images.shape}")
    if (1, *images.shape[1:]) != shape:  # IDX images have one channel
        raise UserError(f"{images_path} holds {images.shape[1]}x{images.shape[2]} images; {name} images are "
                        f"{shape[1]}x{shape[2]}")
    if len(images) == 0:
        raise UserError(f"{images_path} holds no images")
    if labels.ndim != 1:
        raise UserError(f"{labels_path}: an IDX label file must be 1-D, got shape {labels.shape}")
    _check_labels(labels_path, labels, len(images), num_classes, f" in {images_path}")
    return images, labels


def load_idx_folder(folder: Path, val_size: int = 5000, name: str = "mnist") -> Splits:
    paths = [_find(folder, s) for s in _IDX_STEMS]
    if any(p is None for p in paths):
        missing = [s for s, p in zip(_IDX_STEMS, paths, strict=True) if p is None]
        raise UserError(f"{folder} lacks IDX files: {', '.join(missing)}")
    train_images, train_labels, test_images, test_labels = paths
    x, y = _read_idx_pair(train_images, train_labels, name)  # type: ignore[arg-type]
    tx, ty = _read_idx_pair(test_images, test_labels, name)  # type: ignore[arg-type]
    return _split(x[:, None] / 255.0, y, tx[:, None] / 255.0, ty, val_size=min(val_size, len(x) // 6),
                  num_classes=SHAPES[name][1])


def _torchvision_idx(name: str) -> Splits:
    """Fetch MNIST-like data through torchvision into ./data (needs internet once), then read its raw IDX files."""
    import torchvision

    root = Path("data")
    cls = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST}[name]
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as e:  # noqa: BLE001 - any download failure is the same user-facing problem
        raise UserError(f"cannot download {name} to {root} ({_one_line(e)}); pass --data-dir with its IDX "
                        "files") from None
    return load_idx_folder(root / cls.__name__ / "raw", name=name)


def _idx_in(folder: Path, name: str) -> Splits:
    """The IDX files somewhere in a user's folder; never a download there, which would write into their data."""
    for place in _IDX_PLACES:
        candidate = folder / place
        if any(_find(candidate, stem) for stem in _IDX_STEMS):
            return load_idx_folder(candidate, name=name)
    expected = ", ".join(f"{stem}[.gz]" for stem in _IDX_STEMS)
    places = ", ".join(str(folder / place) for place in _IDX_PLACES)
    raise UserError(f"data directory {folder} holds no IDX files: expected {expected} in one of {places}; "
                    f"or leave out --data-dir to download {name} into ./data")


def _idx_dataset(name: str, debian: Path | None) -> Callable[[str], Splits]:
    def load(data_dir: str = "") -> Splits:
        if data_dir:
            return _idx_in(_user_folder(data_dir), name)
        if debian is not None and _find(debian, _IDX_STEMS[0]):
            return load_idx_folder(debian, name=name)
        return _torchvision_idx(name)

    return load


# --- CIFAR-10 (python pickle batches) ---------------------------------------------------------------------

_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"


# The stand-ins below are plain functions without default arguments: a pickle can set attributes on what it
# unpickles (BUILD), but no attribute it can reach changes what these functions accept.


def _latin1_bytes(text: object, encoding: object) -> bytes:
    """`_codecs.encode` as protocol-2 pickles call it to write bytes; any other codec is refused."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode is admitted for latin1 text only, not "
                                     f"{type(text).__name__} to {encoding!r}")
    return text.encode("latin1")


def _empty_bytes() -> bytes:
    """`bytes()` as protocol 2 writes b""; `bytes(n)` with a size from the file is refused."""
    return b""


def _plain_dtype(*args: object) -> np.dtype:
    """`numpy.dtype` without object fields: a batch holds numbers, and numbers cannot smuggle Python objects."""
    dtype = np.dtype(*args)  # type: ignore[call-overload]
    if dtype.hasobject:
        raise pickle.UnpicklingError("object arrays are refused")
    return dtype


def _admitted_globals() -> dict[tuple[str, str], object]:
    """Every global a CIFAR-10 batch names, under numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`) module
    names alike. numpy's functions are taken from its own pickles, so they are this version's, and the deprecated
    `numpy.core` is never imported."""
    reconstruct = np.zeros(0).__reduce__()[0]
    scalar = np.int64(0).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5 pickles arrays as buffers
    admitted: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
        ("_codecs", "encode"): _latin1_bytes,
        ("builtins", "bytes"): _empty_bytes,
        ("__builtin__", "bytes"): _empty_bytes,  # protocols 0-2 write Python 2's module names
    }
    for core in ("numpy.core", "numpy._core"):
        admitted[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        admitted[(f"{core}.multiarray", "scalar")] = scalar
        admitted[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return admitted


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch without running code from it.

    A pickle can name any importable callable and have it called (`os.system`, `builtins.exec`), so every global
    it names goes through `find_class`, and only those a batch of numpy arrays, lists and strings needs pass.
    None of them runs code: they build arrays, dtypes, scalars and bytes from data already in the file.
    """

    ADMITTED = _admitted_globals()

    def __init__(self, file: BinaryIO, path: Path):
        super().__init__(file, encoding="latin1")  # the batches were written by Python 2: str is latin1 bytes
        self.path = path

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ADMITTED:
            raise UserError(f"refusing to load {self.path}: it asks to run {_one_line(module)}.{_one_line(name)}, "
                            "which a CIFAR-10 batch never does")
        return self.ADMITTED[(module, name)]


def _unpickle_batch(path: Path) -> object:
    try:
        with open(path, "rb") as f:
            return _BatchUnpickler(f, path).load()
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged pickle fails in many ways (EOF, bad opcode, type errors)
        raise UserError(f"cannot read CIFAR-10 batch {path}: {_one_line(e) or type(e).__name__}") from None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch as (images (N, 3, 32, 32) uint8, labels (N,)), checked before anything trusts its contents."""
    shape, num_classes = SHAPES["cifar10"]
    batch = _unpickle_batch(path)
    if not isinstance(batch, dict):
        raise UserError(f"{path} is not a CIFAR-10 batch: it is a pickled {type(batch).__name__}, not a dict")
    # Python 2 wrote str keys; a batch re-saved after loading with encoding="bytes" has bytes keys.
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    missing = [repr(k) for k in ("data", "labels") if k not in batch]
    if missing:
        raise UserError(f"{path} is not a CIFAR-10 batch: it lacks {' and '.join(missing)}")
    images, size = batch["data"], int(np.prod(shape))
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.shape[1:] == (size,)):
        got = (f"a {images.dtype} array of shape {images.shape}" if isinstance(images, np.ndarray)
               else f"a {type(images).__name__}")
        raise UserError(f"{path}: 'data' must be a uint8 array of shape (count, {size}), got {got}")
    if len(images) == 0:
        raise UserError(f"{path} holds no images")
    try:
        labels = np.asarray(batch["labels"])
    except (ValueError, TypeError) as e:
        raise UserError(f"{path}: labels must be a list of integers ({_one_line(e)})") from None
    _check_labels(path, labels, len(images), num_classes)
    return images.reshape(-1, *shape), labels


def load_cifar_folder(folder: Path, val_size: int = 5000) -> Splits:
    """Read the `cifar-10-batches-py` pickles: data_batch_1..5 (those present) and test_batch."""
    present = [name for name in _CIFAR_TRAIN if (folder / name).is_file()]
    missing = ([] if present else ["data_batch_1..5"]) + ([] if (folder / _CIFAR_TEST).is_file() else [_CIFAR_TEST])
    if missing:
        raise UserError(f"{folder} lacks CIFAR-10 batches: {' and '.join(missing)}")
    train = [_read_cifar_batch(folder / name) for name in present]
    x = np.concatenate([t[0] for t in train])
    y = np.concatenate([t[1] for t in train])
    tx, ty = _read_cifar_batch(folder / _CIFAR_TEST)
    return _split(x / 255.0, y, tx / 255.0, ty, val_size=min(val_size, len(x) // 10),
                  num_classes=SHAPES["cifar10"][1])


def _cifar_in(root: Path) -> Path | None:
    for candidate in (root, root / "cifar-10-batches-py"):
        if any((candidate / name).is_file() for name in (*_CIFAR_TRAIN, _CIFAR_TEST)):
            return candidate
    return None


def load_cifar10(data_dir: str = "") -> Splits:
    if data_dir:
        # An explicit folder is the user's data: report what is missing rather than download into it.
        root = _user_folder(data_dir)
        folder = _cifar_in(root)
        if folder is None:
            raise UserError(f"data directory {root} holds no CIFAR-10 batches: expected data_batch_1..5 and "
                            f"{_CIFAR_TEST} in {root} or {root / 'cifar-10-batches-py'}; or leave out --data-dir "
                            "to download cifar10 into ./data")
        return load_cifar_folder(folder)
    root = Path("data")
    if (folder := _cifar_in(root)) is not None:
        return load_cifar_folder(folder)
    import torchvision

    try:
        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    except Exception as e:  # noqa: BLE001 - any download failure is the same user-facing problem
        raise UserError(f"cannot download cifar10 to {root} ({_one_line(e)}); if an earlier download stopped "
                        f"halfway, delete {root / 'cifar-10-batches-py'} and {root / 'cifar-10-python.tar.gz'}; or "
                        "pass --data-dir with its batches") from None
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

"""Dataset files are user input: a crafted CIFAR-10 pickle must not run code, and a damaged or mismatched file,
a wrong --data-dir or a failed download must be a one-line UserError naming the file, never a traceback."""

from __future__ import annotations

import codecs
import gzip
import io
import os
import pickle
import struct

import numpy as np
import pytest

from mdp_prune.cli import main
from mdp_prune.engine import data
from mdp_prune.errors import UserError

# --- helpers ----------------------------------------------------------------------------------------------


def _one_line_error(call, *needles: str) -> str:
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


def _batch(n: int = 12, seed: int = 0, label: str = "training batch 1 of 5") -> dict:
    """A batch shaped like the real cifar-10-batches-py ones: uint8 rows of 3072, a list of int labels."""
    rng = np.random.default_rng(seed)
    return {"batch_label": label, "labels": [int(v) for v in rng.integers(0, 10, n)],
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "filenames": [f"img_{seed}_{i}.png" for i in range(n)]}


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2's cPickle wrote its str (BINSTRING), as in the distributed CIFAR-10 files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256 else
                   pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _py2_bytes(batch: dict) -> bytes:
    """The batch as a Python 2 / numpy 1 pickle: str keys and values as byte strings, `numpy.core` names."""
    as_py2 = {k.encode(): v.encode() if isinstance(v, str) else v for k, v in batch.items()}
    as_py2[b"filenames"] = [name.encode() for name in batch["filenames"]]
    out = io.BytesIO()
    _Py2Pickler(out, protocol=2).dump(as_py2)
    raw = out.getvalue()
    assert b"numpy._core." in raw or b"numpy.core." in raw
    return raw.replace(b"numpy._core.", b"numpy.core.")


def _cifar_folder(folder, test=None, train=None, protocol=2):
    """data_batch_1..2 and test_batch; `test`/`train` replace the test batch or data_batch_1 (an object or raw
    bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    contents = {"data_batch_1": _batch(20, 1) if train is None else train, "data_batch_2": _batch(20, 2),
                "test_batch": _batch(10, 3, "testing batch 1 of 1") if test is None else test}
    for name, content in contents.items():
        raw = content if isinstance(content, bytes) else pickle.dumps(content, protocol=protocol)
        (folder / name).write_bytes(raw)
    return folder


class _Call:
    """Pickles as a call of `fn(*args)`: what a crafted batch uses to run code when it is unpickled."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _write_idx(path, array, dtype_code=0x08):
    header = struct.pack(">HBB", 0, dtype_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    dtype = {0x08: np.uint8, 0x0D: ">f4"}[dtype_code]
    with gzip.open(path, "wb") as f:
        f.write(header + np.asarray(array, dtype).tobytes())


def _idx_folder(folder, **replace):
    """A tiny MNIST-like folder; `replace` maps a file stem to the array (or (array, dtype code)) it holds."""
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, 12),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, 6)}
    arrays.update(replace)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        _write_idx(folder / f"{stem}.gz", *(array if isinstance(array, tuple) else (array,)))
    return folder


# --- CIFAR-10: real-format batches load ---------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_real_format_batches_load(tmp_path, protocol):
    folder = _cifar_folder(tmp_path, protocol=protocol)
    images, labels = data._read_cifar_batch(folder / "test_batch")
    expected = _batch(10, 3)
    assert images.shape == (10, *data.SHAPES["cifar10"][0]) and images.dtype == np.uint8
    assert np.array_equal(images.reshape(10, -1), expected["data"]) and labels.tolist() == expected["labels"]
    splits = data.load_cifar10(str(tmp_path))
    assert (splits.input_shape, splits.num_classes) == data.SHAPES["cifar10"]
    assert len(splits.train_y) + len(splits.val_y) == 40 and splits.test_y.tolist() == expected["labels"]


def test_python2_numpy1_batch_loads(tmp_path):
    """The distributed files: written by Python 2 (byte-string keys and data) naming numpy.core.multiarray."""
    batch = _batch(10, 3)
    raw = _py2_bytes(batch)
    assert b"numpy.core.multiarray" in raw and b"numpy._core" not in raw and pickle.SHORT_BINSTRING in raw
    (tmp_path / "test_batch").write_bytes(raw)
    images, labels = data._read_cifar_batch(tmp_path / "test_batch")
    assert np.array_equal(images.reshape(10, -1), batch["data"]) and labels.tolist() == batch["labels"]


def test_bytes_keys_and_numpy_int_labels_load(tmp_path):
    batch = _batch(10, 3)
    batch = {k.encode(): v for k, v in batch.items()}
    batch[b"labels"] = [np.int64(v) for v in batch[b"labels"]]
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    assert data._read_cifar_batch(tmp_path / "test_batch")[1].tolist() == _batch(10, 3)["labels"]


# --- CIFAR-10: crafted pickles run nothing ------------------------------------------------------------------


def _payloads(marker):
    """(payload object, the callable it names): each creates `marker` if it is ever unpickled by pickle.load."""
    return {
        "os.system": (_Call(os.system, f"touch {marker}"), f"{os.system.__module__}.system"),
        "exec": (_Call(exec, f"open({str(marker)!r}, 'w').close()"), "builtins.exec"),
        "eval": (_Call(eval, f"open({str(marker)!r}, 'w').close()"), "builtins.eval"),
        "open": (_Call(open, str(marker), "w"), "io.open"),
        "getattr": (_Call(getattr, _Call(__import__, "os"), "system"), "builtins.getattr"),
        "numpy.load": (_Call(np.load, str(marker), None, True), "numpy.load"),  # numpy, but not an array
        "inside a dict": ({"data": _Call(os.system, f"touch {marker}"), "labels": []},
                          f"{os.system.__module__}.system"),
    }


@pytest.mark.parametrize("protocol", [0, 2, 5])
@pytest.mark.parametrize("kind", ["os.system", "exec", "eval", "open", "getattr", "numpy.load", "inside a dict"])
@pytest.mark.parametrize("where", ["train", "test"])
def test_crafted_batch_runs_no_code(tmp_path, kind, protocol, where):
    marker = tmp_path / "MARKER"
    payload, callable_name = _payloads(marker)[kind]
    folder = _cifar_folder(tmp_path / "cifar", **{where: pickle.dumps(payload, protocol=protocol)})
    path = folder / ("test_batch" if where == "test" else "data_batch_1")
    if protocol < 3:  # the name as the file spells it: protocols 0-2 write Python 2's module names
        callable_name = callable_name.replace("builtins.", "__builtin__.")
    _one_line_error(lambda: data.load_cifar10(str(tmp_path / "cifar")), f"refusing to load {path}",
                    f"asks to run {callable_name}, which a CIFAR-10 batch never does")
    assert not marker.exists()


def test_the_payload_is_live_under_plain_pickle(tmp_path):
    """The crafted batches above are real exploits: plain pickle.load runs them (here, harmlessly)."""
    marker = tmp_path / "MARKER"
    pickle.loads(pickle.dumps(_payloads(marker)["exec"][0], protocol=2))
    assert marker.exists()


@pytest.mark.parametrize("payload,needle", [
    (_Call(codecs.encode, "x", "rot13"), "latin1 text only, not str to 'rot13'"),  # admitted name, other codec
    (_Call(bytes, 10**12), "cannot read CIFAR-10 batch"),  # admitted name, a size from the file
    (_Call(np.dtype, "O"), "object arrays are refused"),
    (np.array([None, None], dtype=object), "object arrays are refused"),
])
def test_admitted_names_are_admitted_narrowly(tmp_path, payload, needle):
    folder = _cifar_folder(tmp_path, test=pickle.dumps(payload, protocol=2))
    _one_line_error(lambda: data.load_cifar_folder(folder), str(folder / "test_batch"), needle)


# --- CIFAR-10: damaged and mismatched batches ---------------------------------------------------------------


def _with(**changes) -> dict:
    batch = _batch(10, 3)
    batch.update(changes)
    return {k: v for k, v in batch.items() if v is not None}


BAD_BATCHES = [
    ("a list", [_batch(10, 3)], "is not a CIFAR-10 batch: it is a pickled list, not a dict"),
    ("an array", np.zeros((10, 3072), np.uint8), "it is a pickled ndarray, not a dict"),
    ("no labels", _with(labels=None), "lacks 'labels'"),
    ("no data", _with(data=None), "lacks 'data'"),
    ("nothing", {}, "lacks 'data' and 'labels'"),
    ("rows of 3000", _with(data=np.zeros((10, 3000), np.uint8)), "shape (count, 3072), got a uint8 array"),
    ("flat data", _with(data=np.zeros(30720, np.uint8)), "got a uint8 array of shape (30720,)"),
    ("images as 4-D", _with(data=np.zeros((10, 3, 32, 32), np.uint8)), "got a uint8 array of shape (10, 3, 32"),
    ("float data", _with(data=np.zeros((10, 3072), np.float32)), "got a float32 array"),
    ("data as a list", _with(data=[[0] * 3072] * 10), "got a list"),
    ("no images", _with(data=np.zeros((0, 3072), np.uint8), labels=[]), "holds no images"),
    ("too few labels", _with(labels=[1] * 9), "holds 9 labels for 10 images"),
    ("too many labels", _with(labels=[1] * 11), "holds 11 labels for 10 images"),
    ("label 10", _with(labels=[10] + [1] * 9), "label 10 is outside 0..9"),
    ("label -1", _with(labels=[1] * 9 + [-1]), "label -1 is outside 0..9"),
    ("float labels", _with(labels=[1.5] * 10), "labels must be integers, got float64"),
    ("string labels", _with(labels=["cat"] * 10), "labels must be integers"),
    ("nested labels", _with(labels=[[1, 2]] * 10), "labels must be a 1-D list"),
    ("ragged labels", _with(labels=[[1, 2], [3]] + [1] * 8), "labels must be a list of integers"),
    ("garbage", b"garbage", "cannot read CIFAR-10 batch"),
    ("empty file", b"", "cannot read CIFAR-10 batch"),
    ("truncated", pickle.dumps(_batch(10, 3), protocol=2)[:500], "cannot read CIFAR-10 batch"),
]


@pytest.mark.parametrize("where", ["train", "test"])
@pytest.mark.parametrize("content,needle", [b[1:] for b in BAD_BATCHES], ids=[b[0] for b in BAD_BATCHES])
def test_bad_batch_is_one_line_naming_the_file(tmp_path, content, needle, where):
    folder = _cifar_folder(tmp_path, **{where: content})
    path = folder / ("test_batch" if where == "test" else "data_batch_1")
    _one_line_error(lambda: data.load_cifar10(str(tmp_path)), str(path), needle)


@pytest.mark.parametrize("remove,needle", [
    (["test_batch"], "lacks CIFAR-10 batches: test_batch"),
    (["data_batch_1", "data_batch_2"], "lacks CIFAR-10 batches: data_batch_1..5"),
])
def test_incomplete_cifar_folder(tmp_path, remove, needle):
    folder = _cifar_folder(tmp_path / "cifar-10-batches-py")
    for name in remove:
        (folder / name).unlink()
    _one_line_error(lambda: data.load_cifar10(str(tmp_path)), str(folder), needle)


# --- IDX: mismatched files ----------------------------------------------------------------------------------

BAD_IDX = [
    ("2-D images", "train-images-idx3-ubyte", {"train-images-idx3-ubyte": np.zeros((12, 784))},
     "must be 3-D (count, height, width), got shape (12, 784)"),
    ("4-D images", "t10k-images-idx3-ubyte", {"t10k-images-idx3-ubyte": np.zeros((6, 28, 28, 1))},
     "must be 3-D"),
    ("32x32 images", "train-images-idx3-ubyte", {"train-images-idx3-ubyte": np.zeros((12, 32, 32))},
     "holds 32x32 images; mnist images are 28x28"),
    ("2-D labels", "train-labels-idx1-ubyte", {"train-labels-idx1-ubyte": np.zeros((12, 1))},
     "must be 1-D, got shape (12, 1)"),
    ("train count", "train-labels-idx1-ubyte", {"train-labels-idx1-ubyte": np.zeros(11)},
     "holds 11 labels for 12 images in"),
    ("test count", "t10k-labels-idx1-ubyte", {"t10k-labels-idx1-ubyte": np.zeros(7)}, "holds 7 labels for 6 images"),
    ("label 10", "train-labels-idx1-ubyte", {"train-labels-idx1-ubyte": np.full(12, 10)}, "label 10 is outside 0..9"),
    ("label 255", "t10k-labels-idx1-ubyte", {"t10k-labels-idx1-ubyte": np.full(6, 255)}, "label 255 is outside"),
    ("float labels", "train-labels-idx1-ubyte", {"train-labels-idx1-ubyte": (np.zeros(12), 0x0D)},
     "labels must be integers, got >f4"),
    ("no images", "t10k-images-idx3-ubyte",
     {"t10k-images-idx3-ubyte": np.zeros((0, 28, 28)), "t10k-labels-idx1-ubyte": np.zeros(0)}, "holds no images"),
]


@pytest.mark.parametrize("stem,replace,needle", [b[1:] for b in BAD_IDX], ids=[b[0] for b in BAD_IDX])
def test_bad_idx_is_one_line_naming_the_file(tmp_path, stem, replace, needle):
    folder = _idx_folder(tmp_path, **replace)
    _one_line_error(lambda: data.DATASETS["mnist"](str(tmp_path)), str(folder / f"{stem}.gz"), needle)


def test_truncated_idx_is_one_line(tmp_path):
    path = _idx_folder(tmp_path) / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:1000]))
    _one_line_error(lambda: data.DATASETS["fashion-mnist"](str(tmp_path)), f"cannot read IDX file {path}")
    path.write_bytes(path.read_bytes()[:40])  # a gzip stream cut short
    _one_line_error(lambda: data.DATASETS["fashion-mnist"](str(tmp_path)), f"cannot read IDX file {path}")


# --- data folders and downloads -----------------------------------------------------------------------------


@pytest.fixture
def downloads(monkeypatch):
    """Replaces torchvision's dataset classes: records each download asked for, and fails it in several lines."""
    import torchvision

    calls = []

    def fake(name):
        def download(root, train=True, download=False):
            calls.append((name, root, train))
            raise RuntimeError(f"Error downloading {name}:\nTried https://example.invalid/{name}\n  timed out")
        return download

    for name in ("MNIST", "FashionMNIST", "CIFAR10"):
        monkeypatch.setattr(torchvision.datasets, name, fake(name))
    return calls


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "cifar10"])
def test_data_dir_must_be_an_existing_folder(tmp_path, dataset, downloads):
    a_file = tmp_path / "train-images-idx3-ubyte.gz"
    a_file.write_bytes(b"not a folder")
    _one_line_error(lambda: data.DATASETS[dataset](str(a_file)), f"data directory {a_file} is a file, not a folder")
    missing = tmp_path / "nowhere"
    _one_line_error(lambda: data.DATASETS[dataset](str(missing)), f"data directory {missing} does not exist")
    assert downloads == [] and not missing.exists()


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_empty_idx_folder_is_not_downloaded_into(tmp_path, dataset, downloads):
    (tmp_path / "unrelated.txt").write_text("my own files")
    message = _one_line_error(
        lambda: data.DATASETS[dataset](str(tmp_path)), f"data directory {tmp_path} holds no IDX files",
        "train-images-idx3-ubyte[.gz]", "t10k-labels-idx1-ubyte[.gz]", str(tmp_path / "raw"),
        str(tmp_path / "MNIST" / "raw"), str(tmp_path / "FashionMNIST" / "raw"), "leave out --data-dir")
    assert downloads == [] and sorted(p.name for p in tmp_path.iterdir()) == ["unrelated.txt"], message


def test_empty_cifar_folder_is_not_downloaded_into(tmp_path, downloads):
    _one_line_error(lambda: data.load_cifar10(str(tmp_path)), f"data directory {tmp_path} holds no CIFAR-10",
                    "data_batch_1..5", "test_batch", str(tmp_path / "cifar-10-batches-py"))
    assert downloads == [] and not any(tmp_path.iterdir())


@pytest.mark.parametrize("dataset,cls", [("mnist", "MNIST"), ("cifar10", "CIFAR10")])
def test_without_data_dir_a_failed_download_is_one_line(tmp_path, monkeypatch, downloads, dataset, cls):
    monkeypatch.chdir(tmp_path)
    _one_line_error(lambda: data.DATASETS[dataset](""), f"cannot download {dataset} to data",
                    f"Error downloading {cls}: Tried https://example.invalid/{cls} timed out")
    assert downloads and downloads[0][:2] == (cls, "data")  # the download path is kept, into ./data


# --- through the command line -------------------------------------------------------------------------------


def _cli(capsys, data_dir, out, dataset="cifar10"):
    code = main(["run", "--dataset", dataset, "--data-dir", str(data_dir), "--rounds", "0", "--out", str(out),
                 "--quiet", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    return err


def test_cli_refuses_a_crafted_batch(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    folder = _cifar_folder(tmp_path / "cifar", train=pickle.dumps(_Call(os.system, f"touch {marker}"), protocol=2))
    err = _cli(capsys, tmp_path / "cifar", tmp_path / "out")
    assert f"refusing to load {folder / 'data_batch_1'}" in err and not marker.exists()


def test_cli_reports_a_bad_data_dir(tmp_path, capsys):
    a_file = tmp_path / "cifar.tar.gz"
    a_file.write_bytes(b"")
    assert "is a file, not a folder" in _cli(capsys, a_file, tmp_path / "out")
    folder = _idx_folder(tmp_path / "fm", **{"train-labels-idx1-ubyte": np.full(12, 12)})
    assert str(folder / "train-labels-idx1-ubyte.gz") in _cli(capsys, folder, tmp_path / "out", "fashion-mnist")

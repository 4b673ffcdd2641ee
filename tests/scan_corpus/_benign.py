"""Benign files, each written by the real library that writes such files in the wild.

Tiny models trained on scikit-learn's bundled datasets, fixed seeds, nothing downloaded. The
point is the false-alarm side of the scanner: every one of these must come out clean.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from . import _build as b

Writer = tuple[str, str, str, Callable[[Path], None]]  # (name, klass, description, write(path))


def _torch_writers() -> list[Writer]:
    import torch

    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(0)

    def small_state(p: Path) -> None:
        g = gen()
        torch.save({"fc.weight": torch.randn(4, 8, generator=g), "fc.bias": torch.zeros(4),
                    "bn.running_mean": torch.zeros(4), "bn.num_batches_tracked": torch.tensor(3)}, p)

    def many_tensors(p: Path) -> None:
        g = gen()
        torch.save({f"t{i}": torch.randn(64, generator=g) for i in range(1500)}, p)

    def checkpoint(p: Path) -> None:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10)
        x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
        torch.save({"epoch": 3, "global_step": 96, "model_state_dict": model.state_dict(),
                    "optimizer_state_dict": opt.state_dict(), "scheduler": sched.state_dict(),
                    "best_metric": 0.71, "args": {"lr": 1e-3, "batch_size": 32, "tags": ["a", "b"]},
                    "rng_state": torch.get_rng_state()}, p)

    def dtypes(p: Path) -> None:
        g = gen()
        base = torch.randn(16, generator=g)
        torch.save({"f16": base.half(), "bf16": base.bfloat16(), "i8": (base * 10).to(torch.int8),
                    "u8": torch.arange(16, dtype=torch.uint8), "bool": base > 0,
                    "c64": torch.complex(base, base), "f64": base.double(), "i64": torch.arange(4),
                    "view": base[2:10:2], "param": torch.nn.Parameter(base.clone())}, p)

    def legacy(p: Path) -> None:
        from ._common import normalize_legacy_keys

        g = gen()
        buf = io.BytesIO()
        torch.save({"w": torch.randn(3, 3, generator=g), "epoch": 7, "note": "legacy"}, buf,
                   _use_new_zipfile_serialization=False)
        p.write_bytes(normalize_legacy_keys(buf.getvalue()))

    def proto5(p: Path) -> None:
        torch.save({"w": torch.ones(2, 2)}, p, pickle_protocol=5)

    def sparse_q(p: Path) -> None:
        i = torch.tensor([[0, 1, 1], [2, 0, 2]])
        v = torch.tensor([3.0, 4.0, 5.0])
        q = torch.quantize_per_tensor(torch.linspace(-1, 1, 8), 0.1, 10, torch.quint8)
        torch.save({"sparse": torch.sparse_coo_tensor(i, v, (2, 3)), "quant": q}, p)

    def whole_module(p: Path) -> None:
        torch.manual_seed(0)
        torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Tanh()), p)

    def script(p: Path) -> None:
        torch.manual_seed(0)
        torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU())), p)

    def export(p: Path) -> None:
        torch.manual_seed(0)
        mod = torch.nn.Sequential(torch.nn.Linear(4, 2))
        torch.export.save(torch.export.export(mod, (torch.randn(1, 4),)), p)

    def safetensors_small(p: Path) -> None:
        from safetensors.torch import save_file

        g = gen()
        save_file({"embed.weight": torch.randn(10, 4, generator=g), "head.bias": torch.zeros(10)}, p,
                  metadata={"format": "pt"})

    def safetensors_mixed(p: Path) -> None:
        from safetensors.torch import save_file

        g = gen()
        save_file({f"layers.{i}.w": torch.randn(8, generator=g).to(dt) for i, dt in
                   enumerate((torch.float16, torch.bfloat16, torch.int8, torch.float32, torch.bool))}, p)

    return [
        ("state-dict-small.pt", "torch", "torch.save of a small state dict (a few float tensors)",
         small_state),
        ("state-dict-1500-tensors.pt", "torch", "torch.save of {t0..t1499: randn(64)}: 1500 storages "
         "named archive/data/N (a known false-alarm trigger)", many_tensors),
        ("training-checkpoint.pt", "torch", "a training checkpoint: epoch, model/optimizer (Adam "
         "param_groups, exp_avg) and StepLR state, args dict, RNG state", checkpoint),
        ("dtypes.pt", "torch", "float16/bfloat16/int8/uint8/bool/complex64/float64 tensors, a strided "
         "view and a Parameter", dtypes),
        ("legacy-format.pt", "torch", "torch.save(_use_new_zipfile_serialization=False): the pre-1.6 "
         "five-pickle format (address-based storage keys fixed to digits for reproducibility)", legacy),
        ("pickle-protocol-5.pt", "torch", "torch.save(pickle_protocol=5)", proto5),
        ("sparse-quantized.pt", "torch", "a sparse COO tensor and a quantized (quint8) tensor", sparse_q),
        ("whole-module.pt", "torch", "torch.save of a whole nn.Sequential (pickles module classes)",
         whole_module),
        ("torchscript.pt", "torchscript", "torch.jit.save of a scripted module (code/, constants.pkl)",
         script),
        ("exported.pt2", "torch-export", "torch.export.save of an ExportedProgram (.pt2 archive)", export),
        ("model.safetensors", "safetensors", "safetensors.torch.save_file with metadata", safetensors_small),
        ("mixed-dtypes.safetensors", "safetensors", "safetensors with f16/bf16/i8/f32/bool tensors",
         safetensors_mixed),
    ]


def _sklearn_writers() -> list[Writer]:
    import joblib
    import numpy as np
    from sklearn.datasets import load_breast_cancer, load_digits, load_iris
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from sklearn.svm import SVC

    iris = load_iris()
    xi, yi = iris.data, iris.target

    def logreg() -> LogisticRegression:
        return LogisticRegression(max_iter=200).fit(xi, yi)

    def forest() -> RandomForestClassifier:
        return RandomForestClassifier(n_estimators=4, max_depth=3,
                                      random_state=np.random.RandomState(0)).fit(xi, yi)

    def svc_pipe() -> Pipeline:
        bc = load_breast_cancer()
        pipe = Pipeline([("scale", StandardScaler()), ("svc", SVC(probability=False))])
        return pipe.fit(bc.data, bc.target)

    def log1p_pipe() -> Pipeline:
        return make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=300)).fit(xi, yi)

    def hgb() -> HistGradientBoostingClassifier:
        d = load_digits()
        return HistGradientBoostingClassifier(max_iter=3, max_depth=3, random_state=0).fit(d.data[:400],
                                                                                           d.target[:400])

    def pkl(make: Callable[[], object], protocol: int = pickle.DEFAULT_PROTOCOL) -> Callable[[Path], None]:
        def write(p: Path) -> None:
            with open(p, "wb") as fh:
                pickle.dump(make(), fh, protocol=protocol)
        return write

    def jl(make: Callable[[], object], compress: object = 0) -> Callable[[Path], None]:
        def write(p: Path) -> None:
            joblib.dump(make(), p, compress=compress)
        return write

    def with_rng() -> dict[str, object]:
        ss = np.random.SeedSequence(1234)
        return {"model": forest(), "rng": np.random.default_rng(ss), "seed_seq": ss,
                "legacy_rng": np.random.RandomState(7), "feature_names": list(iris.feature_names)}

    def skops_dump(make: Callable[[], object]) -> Callable[[Path], None]:
        def write(p: Path) -> None:
            import skops.io as sio

            sio.dump(make(), p)
            _fix_skops(p)
        return write

    writers: list[Writer] = [
        ("logreg.pkl", "sklearn", "pickle.dump of a LogisticRegression fitted on iris", pkl(logreg)),
        ("logreg-protocol2.pkl", "sklearn", "the same LogisticRegression pickled with protocol 2",
         pkl(logreg, 2)),
        ("forest-randomstate.joblib", "sklearn", "joblib.dump of a RandomForestClassifier whose "
         "random_state is a numpy RandomState object", jl(forest)),
        ("forest-generator-bundle.joblib", "sklearn", "joblib.dump of {model, numpy Generator, "
         "SeedSequence, RandomState, names}: numpy bit-generator state inside", jl(with_rng)),
        ("svc-pipeline.pkl", "sklearn", "Pipeline(StandardScaler, SVC(probability=False)) on "
         "breast_cancer", pkl(svc_pipe)),
        ("log1p-pipeline.joblib", "sklearn", "Pipeline(FunctionTransformer(np.log1p), "
         "LogisticRegression): a numpy ufunc pickled by name", jl(log1p_pipe)),
        ("hist-gradient-boosting.joblib", "sklearn", "HistGradientBoostingClassifier on digits", jl(hgb)),
        ("skops-logreg.skops", "skops", "skops.io.dump of a LogisticRegression", skops_dump(logreg)),
        ("skops-forest.skops", "skops", "skops.io.dump of a RandomForestClassifier",
         skops_dump(lambda: RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0).fit(xi, yi))),
        ("skops-pipeline.skops", "skops", "skops.io.dump of a StandardScaler+SVC pipeline",
         skops_dump(svc_pipe)),
    ]
    for compress, label in ((("zlib", 3), "zlib"), (("gzip", 3), "gzip"), (("bz2", 3), "bz2"),
                            (("lzma", 3), "lzma"), (("xz", 3), "xz")):
        writers.append((f"logreg-joblib-{label}.joblib", "joblib",
                        f"joblib.dump(compress={compress!r}) of a LogisticRegression", jl(logreg, compress)))
    try:
        import lz4  # noqa: F401

        writers.append(("logreg-joblib-lz4.joblib", "joblib", "joblib.dump(compress='lz4') of a "
                        "LogisticRegression", jl(logreg, ("lz4", 3))))
    except ImportError:  # lz4 is optional
        pass
    writers.append(("arrays-dict.joblib", "joblib", "joblib.dump of a dict of numpy arrays (float, "
                    "int, bool, an object array of str, a structured array)",
                    jl(lambda: {"f": np.linspace(0, 1, 50), "i": np.arange(10, dtype=np.int16),
                                "b": np.zeros(3, bool), "names": np.array(["a", "bc"], dtype=object),
                                "rec": np.zeros(2, dtype=[("x", "<f4"), ("y", "<i8")])})))
    return writers


def _numpy_writers() -> list[Writer]:
    import numpy as np
    import scipy.sparse

    rng = np.random.default_rng(0)

    def save(obj: object) -> Callable[[Path], None]:
        def write(p: Path) -> None:
            with open(p, "wb") as fh:  # a file object: np.save would append .npy to a name
                np.save(fh, obj)  # type: ignore[arg-type]
        return write

    def savez(compressed: bool) -> Callable[[Path], None]:
        def write(p: Path) -> None:
            arrays = {"weights": rng.standard_normal((4, 4)), "labels": np.arange(4),
                      "names": np.array(["alpha", "beta"])}
            with open(p, "wb") as fh:
                if compressed:
                    np.savez_compressed(fh, weights=arrays["weights"], labels=arrays["labels"],
                                        names=arrays["names"])
                else:
                    np.savez(fh, weights=arrays["weights"], labels=arrays["labels"], names=arrays["names"])
        return write

    def pk(make: Callable[[], object]) -> Callable[[Path], None]:
        def write(p: Path) -> None:
            with open(p, "wb") as fh:
                pickle.dump(make(), fh)
        return write

    return [
        ("float32.npy", "numpy", "np.save of a float32 matrix",
         save(rng.standard_normal((8, 8)).astype("f4"))),
        ("unicode-strings.npy", "numpy", "np.save of a '<U8' string array", save(np.array(["cat", "dog"]))),
        ("bytes-strings.npy", "numpy", "np.save of an 'S5' bytes array", save(np.array([b"ab", b"cde"]))),
        ("structured.npy", "numpy", "np.save of a structured [('x','<f4'),('y','<i8')] array",
         save(np.zeros(3, dtype=[("x", "<f4"), ("y", "<i8")]))),
        ("fortran.npy", "numpy", "np.save of a Fortran-ordered array",
         save(np.asfortranarray(np.ones((3, 2))))),
        ("arrays.npz", "numpy", "np.savez of three arrays (numeric and strings)", savez(False)),
        ("arrays-compressed.npz", "numpy", "np.savez_compressed of three arrays", savez(True)),
        ("randomstate.pkl", "numpy", "pickle of a numpy RandomState", pk(lambda: np.random.RandomState(42))),
        ("generator.pkl", "numpy", "pickle of a numpy Generator(PCG64) seeded by SeedSequence",
         pk(lambda: np.random.Generator(np.random.PCG64(np.random.SeedSequence(5))))),
        ("csr-matrix.pkl", "scipy", "pickle of a scipy.sparse csr_matrix",
         pk(lambda: scipy.sparse.random(20, 10, density=0.1, format="csr", random_state=0))),
        ("csc-array.pkl", "scipy", "pickle of a scipy.sparse csc_array",
         pk(lambda: scipy.sparse.csc_array(np.eye(4)))),
        ("config-dict-protocol0.pkl", "pickle", "protocol 0 pickle of a plain config dict (text opcodes)",
         lambda p: p.write_bytes(pickle.dumps({"lr": 0.1, "layers": [64, 32], "name": "mlp", "ok": True},
                                              protocol=0))),
    ]


def _fix_skops(p: Path) -> None:
    """Make a skops file reproducible: skops names entries and ``__id__`` fields after id() and
    dates them now; renumber the ids consistently (first use in schema.json order) and date
    every entry 1980-01-01. Contents, order and compression are otherwise unchanged."""
    import re

    with zipfile.ZipFile(p) as src:
        entries = [(info, src.read(info)) for info in src.infolist()]
    schema = next(data for info, data in entries if info.filename == "schema.json").decode()
    ids: dict[str, str] = {}
    for found in re.findall(r'"__id__": (\d+)|"file": "(\d+)\.npy"', schema):
        for num in found:
            if num and num not in ids:
                ids[num] = str(len(ids) + 1)
    for info, _data in entries:
        stem = info.filename.removesuffix(".npy")
        if stem.isdigit() and stem not in ids:
            ids[stem] = str(len(ids) + 1)

    def renum(text: str) -> str:
        return re.sub(r"(?<![0-9])(\d{6,})(?![0-9])", lambda m: ids.get(m.group(1), m.group(1)), text)

    with zipfile.ZipFile(p, "w") as dst:
        for info, data in entries:
            name = info.filename
            if name == "schema.json":
                data = renum(data.decode()).encode()
            elif name.removesuffix(".npy").isdigit():
                name = ids[name.removesuffix(".npy")] + ".npy"
            fixed = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
            dst.writestr(fixed, data)


def _zipcrypto_zip(p: Path) -> None:
    """A password-protected (ZipCrypto) zip holding a CSV, written record by record because
    Python's zipfile cannot encrypt; zipfile opens it with the password 'guard'."""
    plain = b"sepal_length,sepal_width,label\n5.1,3.5,setosa\n6.2,2.9,versicolor\n"
    crc = zlib.crc32(plain)
    enc = b.zipcrypto_encrypt(plain, b"guard", crc, salt=bytes(range(11)))
    name = b"data/iris.csv"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x1, 0, 0, 0x21, crc, len(enc), len(plain),
                        len(name), 0) + name + enc
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x031E, 20, 0x1, 0, 0, 0x21, crc, len(enc),
                          len(plain), len(name), 0, 0, 0, 0, 0o644 << 16, 0) + name
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local), 0)
    data = local + central + eocd
    with zipfile.ZipFile(io.BytesIO(data)) as zf:  # prove it decrypts to the CSV
        assert zf.read("data/iris.csv", pwd=b"guard") == plain
    p.write_bytes(data)


def _plain_zip(p: Path) -> None:
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("README.md", "# model card\n"), ("config.json", '{"hidden": 16}\n'),
                           ("vocab.txt", "a\nb\nc\n")):
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), text)


def writers(large: bool) -> list[Writer]:
    out = _torch_writers() + _sklearn_writers() + _numpy_writers()
    out += [("password-protected.zip", "zip", "a ZipCrypto password-protected zip holding a CSV "
             "(encrypted flag set, like a shared dataset archive)", _zipcrypto_zip),
            ("model-card.zip", "zip", "a deflated zip of a model card, config and vocabulary", _plain_zip)]
    if large:
        def big(p: Path) -> None:
            import torch

            g = torch.Generator().manual_seed(0)
            torch.save({f"layer{i}.weight": torch.randn(1024, 1024, generator=g) for i in range(50)}, p)

        out.append(("large-state-dict.pt", "torch", "a ~200 MB state dict (50 x 1024x1024 float32), "
                    "for scan-time bounds", big))
    return out

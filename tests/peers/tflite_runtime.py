"""Old TFLite builds whose int8 reference kernels requantize with gemmlowp's double rounding
(MultiplyByQuantizedMultiplier: SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT).

    site = provision(directory, "tflite-runtime-2.14")
    ys = fully_connected_many(site, "tflite-runtime-2.14", cases)

cases: dicts with the arguments of peers.litert.fully_connected (x, x_scale, x_zp, w, w_scale,
bias, y_scale, y_zp, activation); returns the int8 outputs [B, N], one per case, from the
reference kernel (BUILTIN_REF resolver). The models are built here with
peers.litert.build_fc_model; all cases run in one child Python.

RUNTIMES, both measured on x86-64 to round as gemmlowp on BUILTIN_REF:
  tflite-runtime-2.14  tflite-runtime 2.14.0 (TensorFlow 2.14). Compiled against NumPy 1.x: under
                       NumPy 2 creating an interpreter fails ("A module that was compiled using
                       NumPy 1.x cannot be run in NumPy 2 ...", "AttributeError: _ARRAY_API not
                       found"), as with every tflite-runtime-nightly up to 2.20.0.dev20250409;
                       so numpy 1.26.4 goes into its directory too. Wheels for CPython <= 3.11.
  ai-edge-litert-1.2   ai-edge-litert 1.2.0, the last LiteRT whose reference kernel rounds so;
                       runs on NumPy 2; wheels for CPython 3.9 to 3.12.
Later builds round once on their reference kernel, std::round(double(acc) * m): ai-edge-litert
1.3.0, 1.4.0, 2.0.3, 2.1.0, 2.3.0 and tf.lite in TensorFlow 2.20 and 2.21. The optimized kernels
(ruy) of all of them, these two included, matched qsim's tflite-ruy on the tie probes run.

Why a child Python with its own directory: the builds cannot load in the test process (NumPy 1.x,
or the module name ai_edge_litert already taken by the installed LiteRT 2.3), and pip cannot
install them next to qsim's test dependencies. `provision` pip-installs a runtime into a
directory (--no-deps --target; a few seconds, 13 to 20 MB downloaded); the child is this
interpreter with that directory first on its path, and it checks that the runtime it imported
is the one from there and that the model ran as its single FULLY_CONNECTED node.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# name: (pip requirements, import package, distribution name, version)
RUNTIMES = {
    "tflite-runtime-2.14": (("numpy==1.26.4", "tflite-runtime==2.14.0"), "tflite_runtime", "tflite-runtime", "2.14.0"),
    "ai-edge-litert-1.2": (("ai-edge-litert==1.2.0",), "ai_edge_litert", "ai-edge-litert", "1.2.0"),
}
_KEYS = ("x", "x_scale", "x_zp", "w", "w_scale", "bias", "y_scale", "y_zp", "activation")


class ProvisionError(RuntimeError):
    """pip could not install a runtime (offline, or no wheel for this Python)."""


def _runtime(name):
    if name not in RUNTIMES:
        raise ValueError(f"unknown runtime {name!r}; choose one of {sorted(RUNTIMES)}")
    return RUNTIMES[name]


def provisioned(site, runtime: str) -> bool:
    package = _runtime(runtime)[1]
    return (Path(site) / package / "interpreter.py").is_file()


def provision(site, runtime: str, timeout: float = 120) -> Path:
    """pip-install `runtime` into the directory `site` unless it is already there."""
    requirements = _runtime(runtime)[0]
    site = Path(site)
    if provisioned(site, runtime):
        return site
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
           "--no-deps", "--only-binary=:all:", "--target", str(site), *requirements]
    what = f"pip install {' '.join(requirements)} into {site}"
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ProvisionError(f"{what} took more than {timeout:.0f} s") from None
    if run.returncode != 0 or not provisioned(site, runtime):
        tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
        raise ProvisionError(f"{what} failed: " + " | ".join(tail))
    return site


def fully_connected_many(site, runtime: str, cases) -> list[np.ndarray]:
    """Run each case's int8 FULLY_CONNECTED on the reference kernel of `runtime` installed in `site`."""
    _runtime(runtime)
    from peers import litert                               # the flatbuffer schema of ai_edge_litert

    arrays = {}
    for i, c in enumerate(cases):
        missing = [k for k in _KEYS if k not in c]
        if missing:
            raise KeyError(f"case {i} lacks {missing}")
        x = np.asarray(c["x"], np.int8)
        if x.ndim != 2:
            raise ValueError(f"case {i}: x must be [B, K], got shape {x.shape}")
        model = litert.build_fc_model(x.shape[0], c["w"], c["x_scale"], c["x_zp"], c["w_scale"], c["bias"],
                                      c["y_scale"], c["y_zp"], c["activation"])
        arrays[f"model{i}"] = np.frombuffer(model, np.uint8)
        arrays[f"x{i}"] = x
    with tempfile.TemporaryDirectory(prefix="tflite_old_") as tmp:
        src, dst = Path(tmp, "cases.npz"), Path(tmp, "out.npz")
        np.savez(src, n=len(cases), **arrays)
        path = [str(Path(site).resolve()), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        # -P: the script's folder (tests/peers) would otherwise shadow the tflite_runtime package.
        run = subprocess.run([sys.executable, "-P", __file__, runtime, path[0], str(src), str(dst)], env=env,
                             capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            raise RuntimeError(f"{runtime} child failed (exit {run.returncode}): {run.stderr.strip()[-2000:]}")
        with np.load(dst) as out:
            return [out[f"y{i}"] for i in range(len(cases))]


def _main(runtime, site, src, dst):
    import importlib
    import importlib.metadata

    _, package, dist, version = RUNTIMES[runtime]
    interpreter = importlib.import_module(f"{package}.interpreter")
    where, got = Path(interpreter.__file__).resolve(), importlib.metadata.version(dist)
    if got != version or not where.is_relative_to(site):
        sys.exit(f"expected {dist} {version} from {site}, imported {got} from {where}")
    out = {}
    with np.load(src) as f:
        for i in range(int(f["n"])):
            interp = interpreter.Interpreter(model_content=f[f"model{i}"].tobytes(), num_threads=1,
                                             experimental_op_resolver_type=interpreter.OpResolverType.BUILTIN_REF)
            interp.allocate_tensors()
            # (no lasting reference to interp._interpreter: invoke() refuses to run while one exists)
            nodes = [interp._interpreter.NodeName(k) for k in range(interp._interpreter.NumNodes())]
            if nodes != ["FULLY_CONNECTED"]:
                sys.exit(f"case {i}: expected one FULLY_CONNECTED node, got {nodes}")
            interp.set_tensor(interp.get_input_details()[0]["index"], f[f"x{i}"])
            interp.invoke()
            out[f"y{i}"] = interp.get_tensor(interp.get_output_details()[0]["index"]).copy()
    np.savez(dst, **out)


if __name__ == "__main__":
    _main(*sys.argv[1:])

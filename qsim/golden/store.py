"""A golden directory on disk: arrays as .npz, one .hex per array, manifest.json with hashes.

Layout of DIR:
- golden.npz: every case's arrays under "<case>/<array>" (inputs, parameters, expected).
- <array>.hex: that array over all cases, flattened in C order and concatenated in case
  order, one code per line in fixed-width hex ($readmemh). Codes of a number format are
  its storage width (two's complement for signed integers); other arrays are the bit pattern
  of their numpy type (float32 -> 8 digits). Per-case shapes are in the manifest.
- manifest.json: op, config (the arguments that regenerate the set), resolved facts, each
  array's format, the cases with their shapes, sha256 of every file, and manifest_sha256: the
  sha256 of the manifest's own content (its canonical JSON without that key), so an edited
  manifest (another config, datapath or shape) is refused rather than believed.

Writes are atomic: everything goes into a temporary sibling directory that is renamed into
place. Reading verifies every hash and shape and raises GoldenError naming the file or key.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..codec import decode, encode
from ..formats import FloatFormat, IntFormat, format as get_format

MANIFEST = "manifest.json"
ARRAYS = "golden.npz"
LAYOUT_VERSION = 2                         # 2: manifest_sha256
MANIFEST_HASH = "manifest_sha256"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)          # fixed, so equal content gives equal hashes


class GoldenError(ValueError):
    """A golden directory or outputs file that cannot be used; the message names the file or key."""


@dataclass
class Case:
    name: str
    kind: str                                   # "directed" or "random"
    description: str
    inputs: dict[str, np.ndarray]               # inputs and parameters
    expected: dict[str, np.ndarray]             # expected outputs


@dataclass
class Golden:
    op: str
    config: dict                                # make_golden(**config) regenerates the set
    info: dict                                  # resolved facts (datapath, formats, versions)
    formats: dict[str, str | None]              # array name -> format of its codes, None: plain numbers
    outputs: list[str]                          # expected arrays, in stream order
    cases: list[Case] = field(default_factory=list)

    def output_format(self, name: str):
        return get_format(self.formats[name])

    def segments(self) -> list[tuple[str, int, int, tuple]]:
        """(output, case index, offset, shape) of every expected array in the flat output
        stream: output by output, and within one output case by case."""
        segs, offset = [], 0
        for name in self.outputs:
            for i, case in enumerate(self.cases):
                shape = case.expected[name].shape
                segs.append((name, i, offset, shape))
                offset += math.prod(shape)
        return segs

    @property
    def total(self) -> int:
        return sum(case.expected[name].size for name in self.outputs for case in self.cases)

    def array(self, case: Case, name: str) -> np.ndarray:
        return case.expected[name] if name in case.expected else case.inputs[name]

    def stream(self, name: str) -> np.ndarray:
        """One array over all cases, flattened and concatenated (the .hex content)."""
        return np.concatenate([self.array(c, name).reshape(-1) for c in self.cases]) if self.cases \
            else np.zeros(0)

    def codes(self, name: str) -> np.ndarray:
        """One array's stream as it is in its .hex file: format codes, or the bits of its numpy type."""
        return array_codes(self.stream(name), self.formats.get(name))


# -- codes --------------------------------------------------------------------------------------
def hex_digits(bits: int) -> int:
    return (bits + 3) // 4


def digits_of(fmt_name: str | None, dtype) -> int:
    """Hex digits per line: the format's storage width, else the numpy type's width."""
    return hex_digits(get_format(fmt_name).storage_bits if fmt_name else np.dtype(dtype).itemsize * 8)


def to_codes(values, fmt, where: str = "outputs") -> np.ndarray:
    """Codes (uint64) of an array of results in `fmt`.

    Unsigned integer arrays are taken as codes; signed integers as values of an integer
    format (two's complement); a float array of the format's own layout (float32 for fp32,
    float16, ml_dtypes types) is viewed as bits; any other float array must hold values of
    the format exactly (e.g. float32 results of a float8 kernel)."""
    fmt = get_format(fmt)
    arr = np.asarray(values)
    kind = arr.dtype.kind
    if kind == "u":
        codes = arr.astype(np.uint64)
        if codes.size and int(codes.max()) >= fmt.n_codes:
            i = int(np.argmax(codes >= fmt.n_codes))
            raise GoldenError(f"{where}: code 0x{int(codes.flat[i]):x} at index {i} does not fit "
                              f"{fmt.storage_bits}-bit {fmt.name}")
        return codes
    if kind == "i" or (kind == "f" and isinstance(fmt, IntFormat)):
        return _int_codes(arr, fmt, where)
    if kind == "b":
        raise GoldenError(f"{where}: boolean arrays are not codes of {fmt.name}")
    if _same_layout(arr.dtype, fmt):
        return arr.view(f"u{arr.dtype.itemsize}").astype(np.uint64)
    if kind in "fV" or arr.dtype.name.startswith(("bfloat16", "float")):
        return _float_codes(arr, fmt, where)
    raise GoldenError(f"{where}: cannot read dtype {arr.dtype} as {fmt.name} codes")


def _int_codes(arr: np.ndarray, fmt, where: str) -> np.ndarray:
    if not isinstance(fmt, IntFormat):
        raise GoldenError(f"{where}: signed integers are not codes of the float format {fmt.name}; "
                          "give unsigned codes or float values")
    wide = arr.astype(np.float64) if arr.dtype.kind == "f" else arr.astype(np.int64)
    bad = (wide < fmt.qmin) | (wide > fmt.qmax) | (wide != np.round(wide)) if wide.size else np.zeros(0, bool)
    if np.any(bad):
        i = int(np.argmax(bad.reshape(-1)))
        raise GoldenError(f"{where}: value {wide.reshape(-1)[i].item()!r} at index {i} is not an integer in "
                          f"[{fmt.qmin}, {fmt.qmax}] of {fmt.name}")
    return (wide.astype(np.int64) & (fmt.n_codes - 1)).astype(np.uint64)


def _same_layout(dtype: np.dtype, fmt) -> bool:
    if dtype.kind not in "fV" or dtype.itemsize * 8 != fmt.storage_bits:
        return False
    try:
        return get_format(dtype.name) == fmt
    except (KeyError, ValueError):
        return False


def _float_codes(arr: np.ndarray, fmt, where: str) -> np.ndarray:
    """Codes of float values that must be exactly values of fmt (NaN to its NaN code)."""
    if not isinstance(fmt, FloatFormat):
        raise GoldenError(f"{where}: float values for the integer format {fmt.name}")
    x = arr.astype(np.float64)
    if not fmt.has_nan and np.isnan(x).any():
        i = int(np.argmax(np.isnan(x).reshape(-1)))
        raise GoldenError(f"{where}: NaN at index {i} is not a value of {fmt.name}")
    # encode refuses saturate=False without Inf/NaN codes; saturated values fail the check below
    codes = encode(x, fmt, saturate=not (fmt.has_inf or fmt.has_nan))
    back = decode(codes, fmt, dtype=np.float64)
    same = (back == x) & (np.signbit(back) == np.signbit(x)) | (np.isnan(back) & np.isnan(x))
    if not same.all():
        i = int(np.argmax(~same.reshape(-1)))
        raise GoldenError(f"{where}: {float(x.reshape(-1)[i])!r} at index {i} is not a value of {fmt.name}; "
                          "give codes instead")
    return codes.astype(np.uint64)


def array_codes(arr: np.ndarray, fmt_name: str | None) -> np.ndarray:
    """The hex content of one array: format codes, or the bits of its numpy type."""
    if fmt_name:
        return to_codes(arr, fmt_name, "golden")
    if arr.dtype.kind == "b":
        return arr.astype(np.uint64)
    return arr.view(f"u{arr.dtype.itemsize}").astype(np.uint64)


# -- hex ------------------------------------------------------------------------------------------
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)


def hex_text(codes: np.ndarray, digits: int, comment: str) -> bytes:
    """A comment line, then one zero-padded lowercase hex code per line."""
    c = codes.astype(np.uint64).reshape(-1)
    shifts = np.arange(digits - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    lines = np.empty((c.size, digits + 1), np.uint8)
    lines[:, :digits] = _HEX_DIGITS[(c[:, None] >> shifts) & np.uint64(0xF)]
    lines[:, digits] = ord("\n")
    return f"// {comment}\n".encode() + lines.tobytes()


def read_hex(path) -> np.ndarray:
    """Codes from a $readmemh-style file: hex words separated by white space, `//` comments
    and `_` separators allowed; x/z digits and @address lines are refused."""
    path = Path(path)
    words = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        for token in line.split("//", 1)[0].split():
            if token.startswith("@"):
                raise GoldenError(f"{path.name} line {n}: @address lines are not supported; write codes in order")
            try:
                word = int(token.replace("_", ""), 16)
            except ValueError:
                raise GoldenError(f"{path.name} line {n}: {token!r} is not a hex number") from None
            if not 0 <= word < 1 << 64:
                raise GoldenError(f"{path.name} line {n}: {token!r} is not a code of at most 64 bits")
            words.append(word)
    return np.array(words, dtype=np.uint64)


# -- npz ------------------------------------------------------------------------------------------
def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz that np.load reads, with fixed timestamps so the bytes depend on content only."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for key, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.require(arr, requirements="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, member.getvalue())
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no white space) without its own
    hash: reformatting the file keeps it, any change of content does not."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_HASH}
    return _sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


# -- write ----------------------------------------------------------------------------------------
def _check_cases(golden: Golden) -> list[str]:
    """The array names, once every case has the same arrays, each of one dtype across cases
    (a .hex file has one width)."""
    if not golden.cases:
        raise GoldenError("a golden set needs at least one case")
    first = golden.cases[0]
    names = list(first.inputs) + list(golden.outputs)
    for case in golden.cases:
        have = list(case.inputs) + [o for o in golden.outputs if o in case.expected]
        if have != names:
            raise GoldenError(f"case {case.name!r} has arrays {have}, the others {names}")
        for name in names:
            dtype, want = golden.array(case, name).dtype, golden.array(first, name).dtype
            if dtype != want:
                raise GoldenError(f"case {case.name!r} holds {name} as {dtype}, case {first.name!r} as {want}")
    return names


def golden_files(golden: Golden) -> tuple[dict[str, bytes], dict]:
    """The file contents of a golden directory and its manifest (without writing)."""
    names = _check_cases(golden)
    files = {ARRAYS: _npz_bytes({f"{c.name}/{n}": golden.array(c, n) for c in golden.cases for n in names})}
    arrays, hex_entries = {}, {}
    for name in names:
        fmt, dtype = golden.formats.get(name), golden.array(golden.cases[0], name).dtype
        codes, digits = golden.codes(name), digits_of(fmt, dtype)
        what = f"{fmt} codes" if fmt else f"{dtype} bits"
        files[f"{name}.hex"] = hex_text(codes, digits, f"qsim golden {golden.op}: {name}, {codes.size} "
                                        f"{what}, {digits} hex digits, cases concatenated (shapes in manifest.json)")
        arrays[name] = {"format": fmt, "dtype": dtype.str, "role": "output" if name in golden.outputs else "input",
                        "hex": f"{name}.hex", "digits": digits}
        hex_entries[f"{name}.hex"] = {"shape": [int(codes.size)], "dtype": "hex", "digits": digits}
    manifest = {
        "qsim_golden": LAYOUT_VERSION, "qsim_version": __version__, "op": golden.op,
        "config": golden.config, "info": golden.info, "arrays": arrays, "outputs": golden.outputs,
        "total_outputs": golden.total,
        "cases": [{"name": c.name, "kind": c.kind, "description": c.description,
                   "shapes": {n: list(golden.array(c, n).shape) for n in names}} for c in golden.cases],
        "files": {fname: {"sha256": _sha256(data), "bytes": len(data), **hex_entries.get(fname, {})}
                  for fname, data in files.items()},
    }
    manifest[MANIFEST_HASH] = manifest_digest(manifest)
    return files, manifest


def write_golden(golden: Golden, out_dir) -> Path:
    """Write the set into out_dir atomically (a temporary sibling renamed into place; a whole
    directory, so not qsim.io.write_atomic). An existing out_dir is replaced only if it is empty
    or a golden directory."""
    out = Path(out_dir)
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / MANIFEST).exists())):
        raise GoldenError(f"{out} exists and is not a golden directory; refusing to replace it")
    files, manifest = golden_files(golden)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = None
    try:
        for fname, data in files.items():
            (tmp / fname).write_bytes(data)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        os.chmod(tmp, 0o755)                     # mkdtemp's 0700 would survive the rename
        if out.exists():
            old = tmp.with_name(tmp.name + ".old")
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not out.exists():
            os.rename(old, out)                  # put the previous set back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


# -- read -----------------------------------------------------------------------------------------
def _manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not root.is_dir():
        raise GoldenError(f"{root}: not a directory")
    if not path.exists():
        raise GoldenError(f"{root}: missing {MANIFEST}; not a golden directory")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GoldenError(f"{path}: corrupt JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise GoldenError(f"{path}: the manifest must be a JSON object")
    for key in ("qsim_golden", "op", "config", "info", "arrays", "outputs", "cases", "files"):
        if key not in manifest:
            raise GoldenError(f"{path}: missing key {key!r}")
    regenerate = "regenerate the set with `qsim golden` (its config is in the manifest)"
    if manifest["qsim_golden"] != LAYOUT_VERSION:
        raise GoldenError(f"{path}: layout version {manifest['qsim_golden']!r}; this qsim reads version "
                          f"{LAYOUT_VERSION}, whose manifest carries {MANIFEST_HASH}, the hash of its own content: "
                          f"{regenerate}")
    if MANIFEST_HASH not in manifest:
        raise GoldenError(f"{path}: no {MANIFEST_HASH} (the hash of the manifest's own content), so its content "
                          f"cannot be checked: {regenerate}")
    digest = manifest_digest(manifest)
    if manifest[MANIFEST_HASH] != digest:
        raise GoldenError(f"{path}: content changed after it was written ({MANIFEST_HASH} says "
                          f"{manifest[MANIFEST_HASH]}, the content hashes to {digest}); an edited manifest cannot be "
                          "trusted: regenerate the set with `qsim golden`")
    return manifest


def _verified_bytes(root: Path, fname: str, entry: dict) -> bytes:
    path = root / fname
    if not path.exists():
        raise GoldenError(f"{root}: missing file {fname} (listed in {MANIFEST})")
    data = path.read_bytes()
    digest = _sha256(data)
    if digest != entry.get("sha256"):
        raise GoldenError(f"{path}: sha256 mismatch: manifest says {entry.get('sha256')}, file has {digest}")
    return data


def load_golden(golden_dir, check_hex: bool = False) -> Golden:
    """Read and verify a golden directory (every file's hash, every array's presence and
    shape). check_hex: also parse each .hex and compare it with the arrays."""
    if isinstance(golden_dir, Golden):
        return golden_dir
    root = Path(golden_dir)
    manifest = _manifest(root)
    try:
        if ARRAYS not in manifest["files"]:
            raise GoldenError(f"{root / MANIFEST}: files lists no {ARRAYS}")
        blobs = {f: _verified_bytes(root, f, e) for f, e in manifest["files"].items()}
        stored = _npz_arrays(root, blobs[ARRAYS])
        outputs = list(manifest["outputs"])
        formats = {n: a.get("format") for n, a in manifest["arrays"].items()}
        cases = [_case(root, c, stored, outputs) for c in manifest["cases"]]
        golden = Golden(manifest["op"], manifest["config"], manifest["info"], formats, outputs, cases)
        if check_hex:
            for name, spec in manifest["arrays"].items():
                _check_hex(root, spec["hex"], blobs, golden.codes(name))
    except (KeyError, TypeError, AttributeError) as e:       # a manifest edited into another shape
        raise GoldenError(f"{root / MANIFEST}: malformed ({type(e).__name__}: {e})") from None
    return golden


def _npz_arrays(root: Path, data: bytes) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise GoldenError(f"{root / ARRAYS}: unreadable ({e})") from None


def _case(root: Path, entry: dict, stored: dict, outputs: list[str]) -> Case:
    """One case of the manifest, its arrays checked against the stored keys and shapes."""
    arrays = {}
    for name, shape in entry["shapes"].items():
        key = f"{entry['name']}/{name}"
        if key not in stored:
            raise GoldenError(f"{root / ARRAYS}: missing key {key!r}")
        if list(stored[key].shape) != list(shape):
            raise GoldenError(f"{root / ARRAYS}: key {key!r} has shape {tuple(stored[key].shape)}, "
                              f"{MANIFEST} says {tuple(shape)}")
        arrays[name] = stored[key]
    missing = [o for o in outputs if o not in arrays]
    if missing:
        raise GoldenError(f"{root / MANIFEST}: case {entry['name']!r} has no expected {missing[0]!r}")
    return Case(entry["name"], entry["kind"], entry.get("description", ""),
                {n: a for n, a in arrays.items() if n not in outputs}, {n: arrays[n] for n in outputs})


def _check_hex(root: Path, fname: str, blobs: dict, want: np.ndarray) -> None:
    if fname not in blobs:
        raise GoldenError(f"{root / MANIFEST}: files lists no {fname}")
    if not np.array_equal(read_hex(root / fname), want):
        raise GoldenError(f"{root / fname}: content differs from {ARRAYS}")

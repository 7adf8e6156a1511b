"""Per-layer sensitivity and partial quantization, after Wu et al. 2020, "Integer Quantization
for Deep Learning Inference: Principles and Empirical Evaluation" (section 6.1):

1. quantize one GEMM layer at a time, every other layer in FP32, and rank the layers by the
   accuracy they lose (ties: the lower cosine of the model output to FP32's first, then layer
   order);
2. keep the k most sensitive layers in FP32 for k = 0, 1, 2, ... and record the accuracy of
   each, stopping at the first k within target_drop of FP32 (or when every layer is kept).

Accuracy is top-1 for classifiers, nearest-neighbour agreement with FP32 for MiniLM. Decoder
LLMs are analysed by layer kind (q, k, v, attention, o, gate, up, down, head: every block's
layers of that kind together) and by perplexity, the drop being its relative increase over
FP32's (0.05: 5 % higher). Every run is a sweep point written to the output dataset, so an
interrupted analysis resumes.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..hardware import load_hardware
from ..io import MODEL_ROW, beside, check_dataset_dir, write_text_atomic
from ..quant.calibrate import METHODS as CALIBRATIONS
from ..sim import MODELS
from .run import PointsFailed, open_runner, part_path, run_points
from .spec import make_point


@dataclass(frozen=True)
class LayerLoss:
    layer: str                   # a layer, or a layer kind of a decoder LLM
    value: float                 # the metric with only this layer quantized
    drop: float                  # reference - value
    cosine: float                # model output vs FP32 (the tie-break)


@dataclass(frozen=True)
class PartialStep:
    k: int
    fp32_layers: tuple[str, ...]
    value: float
    drop: float
    units: tuple[str, ...] = ()  # decoder LLMs: the layer kinds kept in FP32


@dataclass(frozen=True)
class Sensitivity:
    model: str
    hardware: str
    calibration: str
    metric: str
    reference: float             # the metric of the FP32 model
    target_drop: float
    ranking: tuple[LayerLoss, ...]      # most sensitive first
    partial: tuple[PartialStep, ...]    # k = 0, 1, ... up to the first within target_drop

    @property
    def chosen(self) -> PartialStep:
        return self.partial[-1]

    def to_dict(self) -> dict:
        return asdict(self)

    def markdown(self) -> str:
        m = self.metric
        lines = [f"# {self.model} on {self.hardware} ({self.calibration} calibration): layer sensitivity", "",
                 f"FP32 {m}: {self.reference:.4f}. One layer quantized at a time, most sensitive first:", "",
                 f"| rank | layer | {m} | drop | output cosine |", "|---|---|---|---|---|"]
        lines += [f"| {i} | {r.layer} | {r.value:.4f} | {r.drop:+.4f} | {r.cosine:.6f} |"
                  for i, r in enumerate(self.ranking, 1)]
        lines += ["", f"Partial quantization: the k most sensitive layers kept in FP32 (target: drop <= "
                      f"{self.target_drop:g}):", "", f"| k | kept in FP32 | {m} | drop |", "|---|---|---|---|"]
        lines += [f"| {s.k} | {', '.join(s.units or s.fp32_layers) or '-'} | {s.value:.4f} | {s.drop:+.4f} |"
                  for s in self.partial]
        return "\n".join(lines) + "\n"


def layer_sensitivity(model: str, hardware, calibration: str = "max", seed: int = 0, target_drop: float = 0.01,
                      out_dir=None, workers: int | None = None, scheduler: str | None = None,
                      progress: bool = False) -> Sensitivity:
    """Rank model's GEMM layers by sensitivity on hardware and find the smallest FP32 set
    meeting target_drop (see the module docstring). Records go to out_dir (default: a
    temporary directory); the one-layer runs go to the workers in parallel."""
    if not isinstance(target_drop, (int, float)) or isinstance(target_drop, bool) or not target_drop >= 0:
        raise ValueError(f"target_drop must be a number >= 0, got {target_drop!r}")
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; built-in models are {', '.join(MODELS)}")
    if calibration not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {calibration!r}; choose one of {', '.join(CALIBRATIONS)}")
    if out_dir is not None:
        check_dataset_dir(out_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            return layer_sensitivity(model, hardware, calibration, seed, target_drop, tmp, workers, scheduler,
                                     progress)
    hw = load_hardware(hardware)

    def point(fp32_layers=(), label=None):
        return make_point(model, hw, (), calibration, seed, fp32_layers, label)

    with open_runner(workers, scheduler) as runner:
        def run(points, desc):
            summary = run_points(points, out_dir, runner, progress, desc)
            if summary.failed:
                raise PointsFailed(summary)
            return [_model_row(out_dir, p) for p in points]

        quantized = point()
        full_row, = run([quantized], "all layers quantized")
        layers = _gemm_layers(out_dir, quantized)
        metric, reference = _metric(full_row)

        units = _units(model, layers)
        names = list(units)
        alone = [point([other for other in layers if other not in units[name]], f"{hw.name} {calibration} only:{name}")
                 for name in names]
        rows = run(alone, "one layer at a time" if names == layers else "one layer kind at a time")
        losses = [LayerLoss(name, row[metric], _drop(metric, reference, row[metric]), row["cosine"])
                  for name, row in zip(names, rows)]
        ranking = sorted(losses, key=lambda r: (-r.drop, r.cosine, names.index(r.layer)))

        steps = [PartialStep(0, (), full_row[metric], _drop(metric, reference, full_row[metric]))]
        while steps[-1].drop > target_drop and steps[-1].k < len(names):
            kept_units = tuple(r.layer for r in ranking[:steps[-1].k + 1])
            kept = tuple(name for unit in kept_units for name in units[unit])
            row, = run([point(kept)], f"{len(kept_units)} kept in FP32")
            steps.append(PartialStep(len(kept_units), kept, row[metric], _drop(metric, reference, row[metric]),
                                     kept_units if names != layers else ()))
    return Sensitivity(model, hw.name, calibration, metric, reference, float(target_drop), tuple(ranking), tuple(steps))


def write_sensitivity(result: Sensitivity, out_dir) -> tuple[Path, Path]:
    """OUT.sensitivity.json and OUT.sensitivity.md beside the dataset directory OUT (which holds
    only records), atomically."""
    paths = beside(out_dir, ".sensitivity.json"), beside(out_dir, ".sensitivity.md")
    write_text_atomic(paths[0], json.dumps(result.to_dict(), indent=1))
    write_text_atomic(paths[1], result.markdown())
    return paths


def _rows(out_dir, point) -> list[dict]:
    import pyarrow.parquet as pq
    return pq.read_table(part_path(out_dir, point), partitioning=None).to_pylist()


def _model_row(out_dir, point) -> dict:
    return next(r for r in _rows(out_dir, point) if r["layer"] == MODEL_ROW)


def _gemm_layers(out_dir, point) -> list[str]:
    layers = [r["layer"] for r in _rows(out_dir, point) if r.get("unit") == "gemm"]
    if not layers:
        raise ValueError(f"{point.model} has no GEMM layers to analyse")
    return layers


def _units(model: str, layers: list[str]) -> dict[str, tuple[str, ...]]:
    """What is quantized alone: each GEMM layer, or for a decoder LLM each layer kind."""
    from ..sim.llm import BUILTIN, layer_kind
    if model not in BUILTIN and not str(model).endswith(".gguf"):
        return {name: (name,) for name in layers}
    kinds: dict[str, tuple[str, ...]] = {}
    for name in layers:
        kind = layer_kind(name)
        if kind is not None:
            kinds[kind] = kinds.get(kind, ()) + (name,)
    return kinds


def _drop(metric: str, reference: float, value: float) -> float:
    """What quantizing costs: accuracy lost, or the relative increase of perplexity."""
    return value / reference - 1.0 if metric == "perplexity" else reference - value


def _metric(model_row: dict) -> tuple[str, float]:
    """The accuracy measure (perplexity for decoder LLMs) and its FP32 value."""
    if model_row.get("perplexity") is not None:
        return "perplexity", model_row["fp32_perplexity"]
    if model_row.get("top1") is not None and model_row.get("fp32_top1") is not None:
        return "top1", model_row["fp32_top1"]
    return "nn_agreement", 1.0                    # FP32 agrees with itself

"""Every quantity qsim reports in a table, defined once: its name, its unit and its basis. The
compare summary (console and Markdown) and the report (HTML and Markdown) take their column
headers from here, so the same header always means the same number.

Bases: a run simulates a batch, the model's whole test set (the records' `samples` inferences);
"per batch" is that run's total, "per inference" the total divided by the samples.
"""

from __future__ import annotations

from dataclasses import dataclass

PER_BATCH = "per batch"
PER_INFERENCE = "per inference"


@dataclass(frozen=True)
class Quantity:
    name: str
    unit: str = ""           # "" for counts and ratios without one
    basis: str = ""          # PER_BATCH, PER_INFERENCE, or what it is taken over ("of the worst layer")

    @property
    def header(self) -> str:
        """e.g. "energy per batch (µJ)"."""
        words = f"{self.name} {self.basis}".strip()
        return f"{words} ({self.unit})" if self.unit else words


TOP1 = Quantity("top-1", "%")
MEAN_COSINE = Quantity("mean cosine")
AGREEMENT_FP32 = Quantity("agrees with FP32", "%")
NN_AGREEMENT = Quantity("nearest neighbour as FP32's", "%")
WORST_SQNR = Quantity("SQNR", "dB", "of the worst layer")
ENERGY_PER_BATCH = Quantity("energy", "µJ", PER_BATCH)
ENERGY_PER_INFERENCE = Quantity("energy", "µJ", PER_INFERENCE)
TIME_PER_BATCH = Quantity("time", "µs", PER_BATCH)
TIME_PER_INFERENCE = Quantity("time", "µs", PER_INFERENCE)
THROUGHPUT = Quantity("throughput", "inferences/s")
CYCLES_PER_BATCH = Quantity("cycles", "", PER_BATCH)
DATA_PER_BATCH = Quantity("data moved", "kB", PER_BATCH)
DATA_BY_LEVEL = Quantity("data moved by memory level", "kB", PER_BATCH)
OVERFLOW = Quantity("overflow", "additions", PER_BATCH)
SATURATED = Quantity("saturated", "additions", PER_BATCH)
NAN_OUTPUTS = Quantity("NaN outputs", "", PER_BATCH)
UTILIZATION = Quantity("utilization", "%")
LAYER_TIME = Quantity("time", "µs", PER_BATCH)
LAYER_CYCLES = Quantity("cycles", "", PER_BATCH)
# decoder LLMs: a run is `samples` prompts (prefill) each followed by its generated tokens (decode)
PERPLEXITY = Quantity("perplexity")
KL_DIVERGENCE = Quantity("KL divergence from FP32", "nats", "per token")
PREFILL_TIME = Quantity("prefill time", "µs", PER_BATCH)
PREFILL_ENERGY = Quantity("prefill energy", "µJ", PER_BATCH)
DECODE_TIME = Quantity("decode time", "µs", "per step")
DECODE_ENERGY = Quantity("decode energy", "µJ", "per step")

"""The built-in workloads by name (MODELS) and load_model.

The graph executor is qsim/sim/graph.py, the layers qsim/sim/layers.py, the Workload type and
the small built-in models qsim/sim/workloads.py, MiniLM qsim/sim/minilm.py; this module sits
above them all, so none of them imports it.
"""

from __future__ import annotations

from functools import lru_cache, partial

from .llm import BUILTIN as LLM_MODELS, load_llm
from .minilm import load_minilm
from .workloads import Workload, digits_cnn, digits_mlp, mnist1d_cnn

MODELS = {"digits-mlp": digits_mlp, "digits-cnn": digits_cnn, "mnist1d-cnn": mnist1d_cnn, "minilm": load_minilm,
          **{name: partial(load_llm, name) for name in LLM_MODELS}}


def load_model(name: str) -> Workload:
    """A built-in workload, or a Llama GGUF file by path (*.gguf). Loaded once per process: the simulator reuses a workload's
    calibration and FP32 reference across hardware configurations (treat its arrays as read-only)."""
    if str(name).endswith(".gguf"):
        return load_llm(str(name))
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; built-in models are {', '.join(MODELS)}")
    return _load(name)


@lru_cache(maxsize=4)
def _load(name: str) -> Workload:
    return MODELS[name]()

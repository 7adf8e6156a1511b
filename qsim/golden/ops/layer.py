"""layer: one node of a whole model, as `qsim golden model` writes it (qsim.golden.model): the
node's inputs and parameters as it sees them and its outputs as the model's kernel path
computes them. Sets of this op come from a model, not from make_golden's generators."""

from __future__ import annotations

from .base import GoldenOp, not_for


class Layer(GoldenOp):
    name = "layer"
    default_random = 0

    def format_rules(self, path) -> dict:
        only = not_for("a layer's formats are the model's own")
        return {"format": only, "weight_format": only, "output_format": only}

    def cases(self, cfg, path, hw, rng):
        raise ValueError("golden sets of op layer are a model's layers: write them with "
                         "`qsim golden model MODEL.onnx --out DIR` (qsim.golden.model_golden)")

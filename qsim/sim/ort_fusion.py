"""The graph ONNX Runtime's default CPU session runs, as far as the numbers go.

ORT (1.32, x86-64) rewrites a quantized model before running it. These are the rewrites that
change results, measured against sessions that save their optimized model
(SessionOptions.optimized_model_filepath) and against their outputs; layout-only rewrites
(NHWC, constant folding of shapes) are left out:

0. Level 1, before the QDQ rewrites: ConstantFolding (every node whose inputs are all
   constants, DequantizeLinear excepted, becomes a constant: a QuantizeLinear of a constant
   thus leaves a lone DQ that rule 2 below does not convert), MatMulAddFusion (a float MatMul
   read only by an Add of a bias becomes Gemm(A, B, bias); an A of other rank than 2 is
   reshaped to (M, K) around it), then QDQPropagation (Q/DQ pairs with the scale and zero point of a DequantizeLinear inserted
   after the Reshape, Transpose, Squeeze, Unsqueeze, Slice or MaxPool nodes it feeds, and of a
   QuantizeLinear before those that feed it: exact on the values, it lets the rules below see
   DQ -> op -> Q groups).
1. EnsureUniqueDQForNodeUnit: a DequantizeLinear read by several nodes (or also a graph
   output) is duplicated, one per reading node input. Then WeightBiasQuantization: a Conv or
   Gemm on a dequantized input whose output reaches a QuantizeLinear (through Relu or Clip at
   most) gets its float32 constant weight quantized (int8, asymmetric, per tensor) and its
   float bias constant rounded to int32 at scale x_scale * w_scale, each behind a DQ. (Those
   DQs are folded to constants only after the QDQ selectors first look: where a Relu or Clip
   stands before the Q, ORT fuses the activation into the float operator first, and the
   group stays float; measured.)
2. QDQS8ToU8 (x86, where int8 activations are not "allowed"): a QuantizeLinear read only by
   one DequantizeLinear, both with the same constant int8 zero point, becomes uint8 with the
   zero point + 128. The values are the same; the integer kernels that follow see other
   codes, which changes some roundings (QLinearAdd's float part, QLinearAveragePool).
3. QDQ selectors and actions: DQ inputs -> op -> Q groups become integer operators when the
   types agree (RULES below); DQ -> MatMul without Q becomes MatMulIntegerToFloat.
4. Dynamic quantization: DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(scale) [-> Add]
   becomes MatMulIntegerToFloat, and DynamicQuantizeMatMul when the DynamicQuantizeLinear
   feeds nothing else.
5. Float fusions of transformer blocks: MatMul + scalar Mul/Div -> FusedMatMul (the scale as
   the GEMM's alpha), Gelu from its Erf form, bias Add + Gelu -> BiasGelu, Add + LayerNormalization
   -> SkipLayerNormalization.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .onnx_graph import MS, Node, QuantModel

F32 = np.float32
INT8, UINT8 = np.dtype(np.int8), np.dtype(np.uint8)


class _Graph:
    """A mutable view of a QuantModel's nodes: who produces and who reads each tensor."""

    def __init__(self, qm: QuantModel):
        self.qm = qm
        self.nodes = list(qm.nodes)
        self.consts = dict(qm.consts)
        self.outputs = set(qm.outputs)
        self.inputs = {i.name: i for i in qm.inputs}
        self.types = {}                 # element types of tensors whose producer was fused away
        self.shapes = dict(qm.shapes)   # inferred shapes, and those of tensors the rewrites make
        self.stays_float = set()        # names of nodes the QDQ rules must leave alone
        self._fresh = 0

    def producer(self, name: str):
        for n in self.nodes:
            if name in n.outputs:
                return n
        return None

    def readers(self, name: str) -> list:
        """(node, input index) of every read of a tensor."""
        return [(n, i) for n in self.nodes for i, t in enumerate(n.inputs) if t == name]

    def new_name(self, base: str) -> str:
        self._fresh += 1
        return f"{base}/qsim{self._fresh}"

    def const(self, base: str, value) -> str:
        name = self.new_name(base)
        self.consts[name] = np.asarray(value)
        return name

    def swap(self, old: Node, new: Node) -> None:
        self.nodes[self.nodes.index(old)] = new

    def remove(self, *nodes) -> None:
        for n in nodes:
            self.nodes.remove(n)

    def dtype(self, name: str):
        """The element type of a tensor where the graph says it: constants, graph inputs,
        QuantizeLinear and DequantizeLinear outputs."""
        if name in self.types:
            return self.types[name]
        if name in self.consts:
            return self.consts[name].dtype
        if name in self.inputs:
            return self.inputs[name].dtype
        p = self.producer(name)
        if p is None:
            return None
        if p.op == "QuantizeLinear":
            if len(p.inputs) > 2 and p.inputs[2]:
                return self.dtype(p.inputs[2])
            from .ort_ops import _onnx_dtype
            return _onnx_dtype(p.attrs["output_dtype"]) if p.attrs.get("output_dtype") else UINT8
        if p.op == "DequantizeLinear":
            return np.dtype(np.float32)
        return None

    def scalar_const(self, name: str):
        v = self.consts.get(name)
        return None if v is None or v.size != 1 else v.reshape(())

    def freeze(self) -> QuantModel:
        return replace(self.qm, nodes=tuple(self.nodes), consts=self.consts)


def ort_default(qm: QuantModel) -> QuantModel:
    """The graph ORT's default session executes, rewritten as ORT rewrites it (see above)."""
    g = _Graph(qm)
    _constant_fold(g)
    _matmul_add(g)
    _qdq_propagate(g)
    _ensure_unique_dq(g)
    _weight_bias_quantization(g)
    _qdq_s8_to_u8(g)
    _qdq_fuse(g)
    _dynamic_quant_fuse(g)
    from .ort_float_fusion import float_fuse
    float_fuse(g)
    return g.freeze()


# -- 0. constants folded; MatMul + Add -> Gemm; Q/DQ pairs propagated through shape operators --------------
def _constant_fold(g: _Graph) -> None:
    """Run the nodes whose inputs are all constants (with qsim's kernels, which are ORT's) and
    keep their outputs as constants; DequantizeLinear stays, as QDQ node units need it. Like
    ORT, which folds when the session starts, this uses ORT's own integer datapath."""
    from .._cpu import ort_integer_datapath
    from ..datapaths.integer import get_datapath
    from .onnx_graph import Ctx
    from .ort_ops import OPS
    for node in list(g.nodes):
        if node.op == "DequantizeLinear" or not node.inputs or (node.domain, node.op) not in OPS \
                or any(t and t not in g.consts for t in node.inputs):
            continue
        ctx = Ctx(node, get_datapath(ort_integer_datapath()), tuple(True for _ in node.inputs), g.qm)
        out = OPS[(node.domain, node.op)](ctx, *[g.consts[t] if t else None for t in node.inputs])
        for name, value in zip(node.outputs, out if isinstance(out, tuple) else (out,)):
            if name:
                g.consts[name] = np.asarray(value)
                g.shapes[name] = np.shape(value)
        g.remove(node)



def _since(g: _Graph, op: str) -> int:
    """The version of a default-domain operator the model's opset selects."""
    from onnx import defs
    return defs.get_schema(op, g.qm.opset, "").since_version


def _attention_projection(g: _Graph, matmul: Node) -> bool:
    """A's producer is Reshape <- Transpose <- MatMul <- Softmax (attention's output projection)."""
    chain = ("Reshape", "Transpose", "MatMul", "Softmax")
    node = matmul
    for op in chain:
        node = g.producer(node.inputs[0])
        if node is None or node.op != op or node.domain:
            return False
    return True


def _matmul_add(g: _Graph) -> None:
    for mm in [n for n in g.nodes if n.op == "MatMul" and not n.domain]:
        reads = g.readers(mm.outputs[0])
        if len(reads) != 1 or mm.outputs[0] in g.outputs or reads[0][0].op != "Add" or reads[0][0].domain:
            continue
        add = reads[0][0]
        if g.dtype(mm.inputs[0]) not in (None, np.dtype(np.float32)):
            continue
        a_shape, b_shape = g.shapes.get(mm.inputs[0]), g.shapes.get(mm.inputs[1])
        bias = _other_input(add, mm.outputs[0])
        c_shape = g.shapes.get(bias)
        if a_shape is None or b_shape is None or c_shape is None or len(b_shape) != 2:
            continue
        reshape = len(a_shape) != 2
        concrete = lambda dims: all(isinstance(d, int) and d >= 0 for d in dims)
        if reshape and (_attention_projection(g, mm) or not concrete(a_shape) or not concrete(b_shape)):
            continue
        n = b_shape[1]
        if not (len(c_shape) == 1 and c_shape[0] == n or not reshape and len(c_shape) == 2 and (
                c_shape[0] == 1 and c_shape[1] == n or c_shape[0] == a_shape[0] and c_shape[1] in (1, n))):
            continue
        a, out = mm.inputs[0], add.outputs[0]
        nodes = []
        if reshape:
            m = int(np.prod(a_shape[:-1], dtype=np.int64))
            a, out = g.new_name(mm.name + "/gemm_input"), g.new_name(mm.name + "/gemm_output")
            g.shapes[a], g.shapes[out] = (m, b_shape[0]), (m, n)
            nodes.append(Node(mm.name + "/gemm_input_reshape", "Reshape", "",
                              (mm.inputs[0], g.const("gemm_input_shape", np.array([m, b_shape[0]]))), (a,)))
        nodes.append(Node(mm.name + "/MatMulAddFusion", "Gemm", "", (a, mm.inputs[1], bias), (out,)))
        if reshape:
            nodes.append(Node(mm.name + "/gemm_output_reshape", "Reshape", "",
                              (out, g.const("gemm_output_shape", np.array(a_shape[:-1] + (n,)))), add.outputs))
        at = g.nodes.index(add)
        g.nodes[at:at + 1] = nodes
        g.remove(mm)


def _other_input(node: Node, name: str) -> str:
    return node.inputs[1] if node.inputs[0] == name else node.inputs[0]


def _propagates(g: _Graph, node: Node) -> bool:
    """CanNodePropagate: the operator versions ORT propagates Q/DQ through."""
    versions = {"MaxPool": (12,), "Reshape": (5, 13, 14, 19), "Transpose": (1, 13), "Squeeze": (1, 11, 13),
                "Unsqueeze": (1, 11, 13), "Slice": (1, 10, 11, 13)}
    return not node.domain and node.op in versions and _since(g, node.op) in versions[node.op]


def _scalar_qparams(g: _Graph, node: Node) -> bool:
    zero = node.inputs[2] if len(node.inputs) > 2 else ""
    return g.scalar_const(node.inputs[1]) is not None and (not zero or g.scalar_const(zero) is not None)


def _sole_reader(g: _Graph, name: str):
    """The (node, input index) reading a tensor when there is exactly one read and it is no graph output."""
    reads = g.readers(name)
    return reads[0] if len(reads) == 1 and name not in g.outputs else None


def _insert_qdq(g: _Graph, name: str, after, qparams: tuple, reads) -> None:
    """Q(name) -> DQ per read (node, index), each read then taking its DQ's output; after: the
    node producing name (None for a graph input). A graph output keeps its name on a DQ."""
    q_out = g.new_name(name + "_q_to_dq")
    source = name
    new = []
    if name in g.outputs:
        source = g.new_name(name + "_pre_q")
        g.swap(after, replace(after, outputs=tuple(source if o == name else o for o in after.outputs)))
        after = next(n for n in g.nodes if source in n.outputs)
        new.append(Node(g.new_name(name + "_dq"), "DequantizeLinear", "", (q_out,) + qparams, (name,)))
    new.insert(0, Node(g.new_name(name + "_q"), "QuantizeLinear", "", (source,) + qparams, (q_out,)))
    for reader, index in reads:
        dq_out = g.new_name(name + "_post_dq")
        new.append(Node(g.new_name(name + "_dq"), "DequantizeLinear", "", (q_out,) + qparams, (dq_out,)))
        now = next(n for n in g.nodes if n.name == reader.name and n.outputs == reader.outputs)
        inputs = list(now.inputs)
        inputs[index] = dq_out
        g.swap(now, replace(now, inputs=tuple(inputs)))
    at = g.nodes.index(after) + 1 if after is not None else 0
    g.nodes[at:at] = new


def _qdq_propagate(g: _Graph) -> None:
    nodes = list(g.nodes)
    for q in [n for n in nodes if n.op == "QuantizeLinear" and not n.domain and _scalar_qparams(g, n)]:
        qparams = q.inputs[1:]
        edge = q.inputs[0]                              # walk up through propagating nodes
        if g.producer(edge) is not None and _sole_reader(g, edge) is None:
            continue
        while True:
            src = g.producer(edge)
            if src is None or not _propagates(g, src):
                break
            edge = src.inputs[0]
            before = g.producer(edge)
            if (before is not None and _sole_reader(g, edge) is None) or (before is not None and
                                                                            before.op == "DequantizeLinear"):
                break
            src_now = next(n for n in g.nodes if n.outputs == src.outputs)
            _insert_qdq(g, edge, before, qparams, [(src_now, 0)])
    for dq in [n for n in nodes if n.op == "DequantizeLinear" and not n.domain and _scalar_qparams(g, n)]:
        if dq not in g.nodes or _sole_reader(g, dq.outputs[0]) is None:
            continue
        qparams = dq.inputs[1:]
        groups = [_propagation_reads(g, _sole_reader(g, dq.outputs[0])[0])]
        while groups:
            node, reads = groups.pop()
            if node is None:
                continue
            name = node.outputs[0]
            _insert_qdq(g, name, node, qparams, reads)
            for reader, _ in reads:
                now = next(n for n in g.nodes if n.name == reader.name and n.outputs == reader.outputs)
                groups.append(_propagation_reads(g, now))


def _propagation_reads(g: _Graph, node: Node):
    """GetNextPropagationEdges: a propagating node and the reads of its output that a Q/DQ pair
    goes on (reads by Q nodes left out; a graph output counts when nothing reads it)."""
    if not _propagates(g, node):
        return None, []
    name = node.outputs[0]
    reads = g.readers(name)
    if reads and name in g.outputs:
        return None, []
    reads = [(r, i) for r, i in reads if r.op != "QuantizeLinear"]
    if not reads and name not in g.outputs:
        return None, []
    return node, reads


# -- 1. one DequantizeLinear per reading node input -------------------------------------------------
def _ensure_unique_dq(g: _Graph) -> None:
    for dq in [n for n in g.nodes if n.op == "DequantizeLinear"]:
        reads = g.readers(dq.outputs[0])
        graph_output = dq.outputs[0] in g.outputs
        if not reads or (len(reads) == 1 and not graph_output):
            continue
        for reader, index in reads[0 if graph_output else 1:]:
            name = g.new_name(dq.outputs[0] + "/duplicated")
            copy = replace(dq, name=dq.name + "/duplicated", outputs=(name,))
            g.nodes.insert(g.nodes.index(dq) + 1, copy)
            reader_now = next(n for n in g.nodes if n.name == reader.name and n.outputs == reader.outputs)
            inputs = list(reader_now.inputs)
            inputs[index] = name
            g.swap(reader_now, replace(reader_now, inputs=tuple(inputs)))


def _is_scalar(g: _Graph, name: str) -> bool:
    shape = g.shapes.get(name)
    return shape is not None and (len(shape) == 0 or tuple(shape) == (1,))


def _path_to_q(g: _Graph, node: Node) -> bool:
    """IsNoBranchPathToQuantizeLinear: one reader after another, Relu or Clip, until a Q."""
    while len(node.outputs) == 1:
        reads = g.readers(node.outputs[0])
        if len(reads) != 1:
            return False
        node = reads[0][0]
        if node.op == "QuantizeLinear":
            return True
        if node.op not in ("Relu", "Clip"):
            return False
    return False


def _weight_bias_quantization(g: _Graph) -> None:
    from .ort_kernels import quantize_linear
    from ..formats import format as get_format
    for node in [n for n in g.nodes if n.op in ("Conv", "Gemm") and not n.domain]:
        x_dq, w = g.producer(node.inputs[0]), node.inputs[1]
        if x_dq is None or x_dq.op != "DequantizeLinear" or not _is_scalar(g, x_dq.inputs[1]) \
                or x_dq.inputs[1] not in g.consts or not _path_to_q(g, node):
            continue
        w_dq = g.producer(w)
        if w_dq is not None and w_dq.op != "DequantizeLinear" or w_dq is None and (
                w not in g.consts or g.consts[w].dtype != np.float32):
            continue
        bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
        if bias is not None and (bias not in g.consts or g.consts[bias].ndim != 1):
            continue
        if w_dq is not None and bias is None:
            continue
        per_tensor = w_dq is None or _is_scalar(g, w_dq.inputs[1])
        if not per_tensor:
            scale, attrs = g.consts.get(w_dq.inputs[1]), w_dq.attrs
            w_rank = len(g.shapes.get(w_dq.inputs[0], ()))
            axis = attrs.get("axis", 1)
            axis = axis + w_rank if axis < 0 else axis
            expected = 0 if node.op == "Conv" else (1 if not node.attrs.get("transB", 0) else 0)
            if scale is None or scale.ndim != 1 or bias is None or scale.size != g.consts[bias].size \
                    or attrs.get("block_size", 0) or axis != expected:
                continue
        inputs = list(node.inputs)
        if w_dq is None:                                # GetQuantizationParameter<int8_t>, asymmetric
            wf = g.consts[w]
            lo, hi = min(F32(wf.min()), F32(0)), max(F32(wf.max()), F32(0))
            scale = F32(1) if hi == lo else F32(F32(hi - lo) / F32(255))
            zero = np.int8(np.rint(np.clip(F32(-128) - F32(lo / scale), F32(-128), F32(127))))
            codes = quantize_linear(wf, scale, int(zero), get_format("int8"))
            w_scale = g.const(node.name + "_weight_scale", scale)
            qparams = (w_scale, g.const(node.name + "_weight_zp", zero))
            inputs[1] = g.new_name(node.name + "_weight_dq")
            g.nodes.insert(g.nodes.index(node), Node(g.new_name(node.name + "_weight_dq"), "DequantizeLinear", "",
                                                     (g.const(node.name + "_weight_q", codes),) + qparams,
                                                     (inputs[1],)))
        else:
            w_scale = w_dq.inputs[1]
        if bias is not None:                            # Cast(Round(bias / (x_scale * w_scale)), int32)
            b_scale = (F32(g.consts[x_dq.inputs[1]].reshape(())) * g.consts[w_scale]).astype(F32)
            with np.errstate(divide="ignore", invalid="ignore"):
                q = np.rint((g.consts[bias] / b_scale).astype(F32)).astype(np.float64)
            ok = np.isfinite(q) & (q >= -2.0 ** 31) & (q < 2.0 ** 31)        # else x86's integer indefinite
            codes = np.where(ok, np.where(ok, q, 0).astype(np.int64), -2 ** 31).astype(np.int32)
            inputs[2] = g.new_name(node.name + "_bias_dq")
            g.nodes.insert(g.nodes.index(node), Node(
                g.new_name(node.name + "_bias_dq"), "DequantizeLinear", "",
                (g.const(node.name + "_bias_int32", codes), g.const(node.name + "_bias_scale", b_scale)),
                (inputs[2],), {} if per_tensor else {"axis": 0}))
        g.swap(node, replace(node, inputs=tuple(inputs)))
        if g.readers(node.outputs[0])[0][0].op != "QuantizeLinear":
            g.stays_float.add(node.name)


# -- 2. int8 Q -> DQ pairs to uint8 --------------------------------------------------------------------
def _qdq_s8_to_u8(g: _Graph) -> None:
    for q in [n for n in g.nodes if n.op == "QuantizeLinear"]:
        reads = g.readers(q.outputs[0])
        if len(reads) != 1 or q.outputs[0] in g.outputs or reads[0][0].op != "DequantizeLinear":
            continue
        dq = reads[0][0]
        if len(q.inputs) != 3 or len(dq.inputs) != 3:
            continue
        zq, zd = g.scalar_const(q.inputs[2]), g.scalar_const(dq.inputs[2])
        if zq is None or zd is None or zq.dtype != INT8 or zd.dtype != INT8 or zq != zd:
            continue
        zero = g.const("qdq_s8_to_u8_zp_conversion", np.uint8(int(zq) + 128))
        codes = g.new_name("qdq_s8_to_u8_quant")
        g.swap(q, replace(q, inputs=q.inputs[:2] + (zero,), outputs=(codes,)))
        g.swap(dq, replace(dq, inputs=(codes, dq.inputs[1], zero)))


# -- 3. QDQ node groups to integer operators ---------------------------------------------------------------
DROP_QDQ = {"Expand", "Flatten", "Gather", "GatherElements", "Reshape", "Slice", "Squeeze", "Tile", "Transpose",
            "Unsqueeze", "MaxPool", "ReduceMax", "ReduceMin", "Resize"}
UNARY = {"AveragePool": "QLinearAveragePool", "LeakyRelu": "QLinearLeakyRelu",
         "GlobalAveragePool": "QLinearGlobalAveragePool", "Sigmoid": "QLinearSigmoid", "Softmax": "QLinearSoftmax"}
BINARY = {"Add": "QLinearAdd", "Mul": "QLinearMul"}
_WIDE = {np.dtype(t) for t in (np.int16, np.uint16)}


def _sub_byte(dtype) -> bool:
    return dtype is not None and np.dtype(dtype).name in ("int4", "uint4")


def _eight_bit(dtype) -> bool:
    return dtype is not None and np.dtype(dtype) in (INT8, UINT8)


def _group(g: _Graph, node: Node):
    """The DQ nodes feeding node and the Q nodes reading it, if they form a QDQ node unit:
    every DQ read only by this node, the node read only by Q nodes and no graph output."""
    dqs = []
    for t in node.inputs:
        p = g.producer(t) if t else None
        if p is not None and p.op == "DequantizeLinear":
            dqs.append(p)
    for dq in dqs:
        if [r for r, _ in g.readers(dq.outputs[0])] != [node] or dq.outputs[0] in g.outputs:
            return None
    reads = [r for out in node.outputs for r, _ in g.readers(out)]
    qs = [r for r in reads if r.op == "QuantizeLinear"]
    if qs and (len(qs) != len(reads) or any(o in g.outputs for o in node.outputs) or len(node.outputs) != len(qs)):
        qs = None
    return dqs, qs


def _types(g: _Graph, dqs, qs):
    return [g.dtype(d.inputs[0]) for d in dqs], [g.dtype(q.outputs[0]) for q in qs or []]


def _same_qparams(g: _Graph, dq: Node, q: Node) -> bool:
    """IsQDQPairSupported: constant scalar scale and zero point, equal on both sides (and the
    scale positive)."""
    s1, s2 = g.scalar_const(dq.inputs[1]), g.scalar_const(q.inputs[1])
    z1 = g.scalar_const(dq.inputs[2]) if len(dq.inputs) > 2 and dq.inputs[2] else np.uint8(0)
    z2 = g.scalar_const(q.inputs[2]) if len(q.inputs) > 2 and q.inputs[2] else np.uint8(0)
    return (s1 is not None and s2 is not None and z1 is not None and z2 is not None and s1 == s2 and s1 > 0
            and int(z1) == int(z2) and z1.dtype == z2.dtype)


def _qparams(dq: Node) -> tuple:
    return dq.inputs[1], dq.inputs[2] if len(dq.inputs) > 2 else ""


def _qdq_fuse(g: _Graph) -> None:
    for node in list(g.nodes):
        if node not in g.nodes or node.domain or node.name in g.stays_float:
            continue
        found = _group(g, node)
        if found is None:
            continue
        dqs, qs = found
        fused = _select(g, node, dqs, qs)
        if fused is None:
            continue
        for q in qs or []:
            g.types[q.outputs[0]] = g.dtype(q.outputs[0])
        g.swap(node, fused)
        g.remove(*dqs, *(qs or []))


def _select(g: _Graph, node: Node, dqs, qs):
    """The replacement of a QDQ node unit, or None where ORT's CPU selectors refuse it."""
    dt_in, dt_out = _types(g, dqs, qs)
    n_inputs = len([t for t in node.inputs if t])
    op = node.op
    if op == "Gemm" and len(dqs) == n_inputs and len(dqs) in (2, 3) and qs is not None and \
            all(_eight_bit(t) for t in dt_in[:2] + dt_out):
        y = (qs[0].inputs[1], qs[0].inputs[2] if len(qs[0].inputs) > 2 else "") if qs else ()
        return _qgemm(g, node, dqs, y, qs[0].outputs if qs else node.outputs)
    if op in DROP_QDQ:
        if len(dqs) != 1 or not qs or len(qs) != 1 or dqs[0].outputs[0] != node.inputs[0]:
            return None
        if dt_in[0] != dt_out[0] or _sub_byte(dt_in[0]) or not _same_qparams(g, dqs[0], qs[0]):
            return None
        if op in ("MaxPool", "ReduceMax", "ReduceMin", "Resize") and dt_in[0] in _WIDE:
            return None
        return replace(node, inputs=(dqs[0].inputs[0],) + node.inputs[1:], outputs=(qs[0].outputs[0],))
    if not qs or len(dqs) != n_inputs:
        if op == "MatMul" and not qs and len(dqs) == 2 and _matmul_types_ok(dt_in):
            return _matmul_integer_to_float(node, dqs)
        return None
    if not all(_eight_bit(t) for t in dt_in + dt_out if t is not None and t != np.dtype(np.int32)):
        return None
    q = qs[0]
    y = (q.inputs[1], q.inputs[2] if len(q.inputs) > 2 else "")
    if op in UNARY and len(dqs) == 1 and dt_in[0] == dt_out[0]:
        attrs = dict(node.attrs)
        if UNARY[op] == "QLinearSoftmax":           # the kernel needs the opset (its axis rules)
            attrs = {"axis": attrs.get("axis", -1 if g.qm.opset >= 13 else 1), "opset": g.qm.opset}
        return Node(node.name, UNARY[op], MS, (dqs[0].inputs[0], *_qparams(dqs[0]), *y), q.outputs, attrs)
    if op in BINARY and len(dqs) == 2 and dt_in[0] == dt_in[1] == dt_out[0]:
        a, b = (next(d for d in dqs if d.outputs[0] == t) for t in node.inputs)
        return Node(node.name, BINARY[op], MS, (a.inputs[0], *_qparams(a), b.inputs[0], *_qparams(b), *y),
                    q.outputs, {})
    if op == "Concat" and all(t == dt_out[0] for t in dt_in):
        ordered = [next(d for d in dqs if d.outputs[0] == t) for t in node.inputs]
        args = [a for d in ordered for a in (d.inputs[0], *_qparams(d))]
        return Node(node.name, "QLinearConcat", MS, (*y, *args), q.outputs, node.attrs)
    if op == "Conv" and len(dqs) in (2, 3):
        x, w = _by_slot(node, dqs, 0), _by_slot(node, dqs, 1)
        tx = g.dtype(x.inputs[0])
        if tx != dt_out[0] or tx == INT8:                 # x86: int8 activations are not allowed
            return None
        bias = ()
        if len(node.inputs) > 2 and node.inputs[2]:
            b = _by_slot(node, dqs, 2)
            if g.dtype(b.inputs[0]) != np.dtype(np.int32):
                return None
            bias = (b.inputs[0],)
        return Node(node.name, "QLinearConv", "", (x.inputs[0], *_qparams(x), w.inputs[0], *_qparams(w), *y, *bias),
                    q.outputs, node.attrs)
    if op == "MatMul" and len(dqs) == 2 and _matmul_types_ok(dt_in) and dt_in[0] == dt_out[0]:
        a, b = _by_slot(node, dqs, 0), _by_slot(node, dqs, 1)
        return Node(node.name, "QLinearMatMul", "", (a.inputs[0], *_qparams(a), b.inputs[0], *_qparams(b), *y),
                    q.outputs, {})
    if op == "Where" and len(dqs) == 2 and dt_in[0] == dt_in[1] == dt_out[0]:
        _not_modelled(g, node, "QLinearWhere")
    return None


def _not_modelled(g: _Graph, node: Node, fused: str):
    g.qm.fail(node, f"ONNX Runtime's default session fuses this QDQ group into {fused}, which qsim does not "
                    "model; run it with path='ort-unfused'")


def _by_slot(node: Node, dqs, slot: int) -> Node:
    return next(d for d in dqs if d.outputs[0] == node.inputs[slot])


def _matmul_types_ok(dt_in) -> bool:
    return all(_eight_bit(t) for t in dt_in) and dt_in[0] != INT8


def _matmul_integer_to_float(node: Node, dqs) -> Node:
    a, b = _by_slot(node, dqs, 0), _by_slot(node, dqs, 1)
    return Node(node.name, "MatMulIntegerToFloat", MS,
                (a.inputs[0], b.inputs[0], a.inputs[1], b.inputs[1], _qparams(a)[1], _qparams(b)[1]), node.outputs, {})


def _qgemm(g: _Graph, node: Node, dqs, y, outputs):
    a, b = _by_slot(node, dqs, 0), _by_slot(node, dqs, 1)
    ta, tb = g.dtype(a.inputs[0]), g.dtype(b.inputs[0])
    if (ta == INT8 and tb != INT8) or (y and ta != g.dtype(outputs[0])):
        return None
    bias = ""
    if len(dqs) == 3:
        if node.attrs.get("beta", 1.0) != 1.0:
            return None
        c = _by_slot(node, dqs, 2)
        if g.dtype(c.inputs[0]) != np.dtype(np.int32):
            return None
        bias = c.inputs[0]
    attrs = {k: node.attrs[k] for k in ("alpha", "transA", "transB") if k in node.attrs}
    return Node(node.name, "QGemm", MS, (a.inputs[0], *_qparams(a), b.inputs[0], *_qparams(b), bias, *y), outputs,
                attrs)


# -- 4. dynamic quantization -------------------------------------------------------------------------------
def _dynamic_quant_fuse(g: _Graph) -> None:
    for mmi in [n for n in g.nodes if n.op == "MatMulInteger"]:
        dql = g.producer(mmi.inputs[0])
        if dql is None or dql.op != "DynamicQuantizeLinear" or mmi.inputs[1] not in g.consts:
            continue
        chain = _single_reader(g, mmi, "Cast")
        mul = chain and _single_reader(g, chain, "Mul")
        if not mul:
            continue
        scale_name = next(t for t in mul.inputs if t != chain.outputs[0])
        scale_mul = g.producer(scale_name)
        if scale_mul is None or scale_mul.op != "Mul" or dql.outputs[1] not in scale_mul.inputs:
            continue
        b_scale = next(t for t in scale_mul.inputs if t != dql.outputs[1])
        if b_scale not in g.consts:
            continue
        add = _single_reader(g, mul, "Add")
        bias = add and next((t for t in add.inputs if t != mul.outputs[0]), None)
        if add and (bias not in g.consts or g.consts[bias].ndim != 1):
            add = None
        last = add or mul
        zb = mmi.inputs[3] if len(mmi.inputs) > 3 else ""
        fused = Node(mmi.name, "MatMulIntegerToFloat", MS,
                     (mmi.inputs[0], mmi.inputs[1], dql.outputs[1], b_scale, dql.outputs[2], zb, bias if add else ""),
                     last.outputs, {})
        g.swap(last, fused)
        g.remove(*[n for n in (mmi, chain, mul, add) if n is not None and n is not last])
        if len(g.readers(scale_name)) == 0:
            g.remove(scale_mul)
    for fused in [n for n in g.nodes if n.op == "MatMulIntegerToFloat" and n.domain == MS]:
        dql = g.producer(fused.inputs[0])
        if dql is None or dql.op != "DynamicQuantizeLinear":
            continue
        readers = {r.name for out in dql.outputs for r, _ in g.readers(out)}
        if readers != {fused.name} or fused.inputs[2] != dql.outputs[1] or fused.inputs[4] != dql.outputs[2]:
            continue
        g.swap(fused, Node(fused.name, "DynamicQuantizeMatMul", MS,
                           (dql.inputs[0], fused.inputs[1], fused.inputs[3], fused.inputs[5], fused.inputs[6]),
                           fused.outputs, {}))
        g.remove(dql)


def _single_reader(g: _Graph, node: Node, op: str):
    reads = g.readers(node.outputs[0])
    if len(reads) == 1 and reads[0][0].op == op and node.outputs[0] not in g.outputs:
        return reads[0][0]
    return None

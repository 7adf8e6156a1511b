"""ONNX Runtime's float fusions (default session, level 2), on the ort_fusion._Graph view:
Gelu from its Erf form, bias Add + Gelu -> BiasGelu, Add + LayerNormalization ->
SkipLayerNormalization, MatMul scaled by a scalar constant -> FusedMatMul."""

from __future__ import annotations

import numpy as np

from .onnx_graph import MS, Node

F32 = np.float32


def float_fuse(g) -> None:
    """Rewrite g (an ort_fusion._Graph) in place, as ORT's GeluFusion, BiasGeluFusion,
    SkipLayerNormFusion and MatMulScaleFusion do."""
    _gelu(g)
    _bias_gelu(g)
    _skip_layer_norm(g)
    _matmul_scale(g)


def _only_reader(g, name: str, op: str):
    """The node reading `name` when it is the only reader, of type op, and name is no graph output."""
    reads = g.readers(name)
    if len(reads) == 1 and reads[0][0].op == op and not reads[0][0].domain and name not in g.outputs:
        return reads[0][0]
    return None


def _const_is(g, name: str, value: float, tol: float = 1e-5) -> bool:
    v = g.scalar_const(name)
    return v is not None and v.dtype.kind == "f" and abs(float(v) - value) <= tol


def _other(node: Node, name: str) -> str:
    return node.inputs[1] if node.inputs[0] == name else node.inputs[0]


# -- Gelu: 0.5 * x * (1 + erf(x / sqrt(2))) -> Gelu (com.microsoft) -----------------------------------
def _gelu(g) -> None:
    for div in [n for n in g.nodes if n.op in ("Div", "Mul") and not n.domain]:
        if div not in g.nodes:
            continue
        x = div.inputs[0]
        if not (div.op == "Div" and _const_is(g, div.inputs[1], 1.4142099, 1e-3)
                or div.op == "Mul" and _const_is(g, div.inputs[1], 0.7071067, 1e-3)):
            continue
        erf = _only_reader(g, div.outputs[0], "Erf")
        add = erf and _only_reader(g, erf.outputs[0], "Add")
        if not add or not _const_is(g, _other(add, erf.outputs[0]), 1.0):
            continue
        mul = _only_reader(g, add.outputs[0], "Mul")
        if not mul:
            continue
        half = None
        if _other(mul, add.outputs[0]) == x:                       # x * (1 + erf) then * 0.5
            half = _only_reader(g, mul.outputs[0], "Mul")
            if not half or not _const_is(g, _other(half, mul.outputs[0]), 0.5):
                continue
            last, removed = half, (div, erf, add, mul)
        else:                                                       # (0.5 * x) * (1 + erf)
            first = g.producer(_other(mul, add.outputs[0]))
            if first is None or first.op != "Mul" or x not in first.inputs or \
                    not _const_is(g, _other(first, x), 0.5) or len(g.readers(first.outputs[0])) != 1:
                continue
            last, removed = mul, (first, div, erf, add)
        g.swap(last, Node(last.name, "Gelu", MS, (x,), last.outputs, {}))
        g.remove(*removed)


# -- Add(x, 1-D bias) + Gelu -> BiasGelu ------------------------------------------------------------------
def _bias_gelu(g) -> None:
    for add in [n for n in g.nodes if n.op == "Add" and not n.domain]:
        shapes = [g.shapes.get(t) for t in add.inputs]
        if any(s is None or len(s) < 1 or not isinstance(s[-1], int) or s[-1] <= 0 for s in shapes) \
                or shapes[0][-1] != shapes[1][-1]:
            continue
        bias = 0 if len(shapes[0]) == 1 else 1 if len(shapes[1]) == 1 else None
        reads = g.readers(add.outputs[0])
        if bias is None or add.outputs[0] in g.outputs or len(reads) != 1 or reads[0][0].op != "Gelu" \
                or reads[0][0].domain != MS:
            continue
        gelu = reads[0][0]
        g.swap(gelu, Node(gelu.name, "BiasGelu", MS, (add.inputs[1 - bias], add.inputs[bias]), gelu.outputs, {}))
        g.remove(add)


# -- Add (+ bias Add) + LayerNormalization -> SkipLayerNormalization ------------------------------------
def _three_d_equal(g, a: str, b: str) -> bool:
    """CheckFirstAdd's shapes: both 3-D, equal fixed dimensions (the first may be a shared name)."""
    sa, sb = g.shapes.get(a), g.shapes.get(b)
    if sa is None or sb is None or len(sa) != 3 or len(sb) != 3:
        return False
    for i, (x, y) in enumerate(zip(sa, sb)):
        if isinstance(x, int) and x > 0 and x == y:
            continue
        if i == 0 and isinstance(x, str) and x == y:
            continue
        return False
    return True


def _bias_add(g, node) -> bool:
    """CheckSecondAdd: a 3-D input plus a 1-D constant of its last dimension."""
    if node is None or node.op != "Add" or node.domain or len(g.readers(node.outputs[0])) != 1 \
            or node.outputs[0] in g.outputs or node.inputs[1] not in g.consts:
        return False
    sa = g.shapes.get(node.inputs[0])
    c = g.consts[node.inputs[1]]
    return sa is not None and len(sa) == 3 and c.ndim == 1 and isinstance(sa[2], int) and sa[2] == c.shape[0]


def _skip_layer_norm(g) -> None:
    for ln in [n for n in g.nodes if n.op == "LayerNormalization" and not n.domain]:
        add1 = g.producer(ln.inputs[0])
        if add1 is None or add1.op != "Add" or add1.domain or len(g.readers(add1.outputs[0])) != 1 \
                or add1.outputs[0] in g.outputs or not _three_d_equal(g, *add1.inputs):
            continue
        if ln.attrs.get("axis", -1) not in (-1, 2):
            continue
        inputs = [add1.inputs[0], add1.inputs[1], ln.inputs[1], ln.inputs[2] if len(ln.inputs) > 2 else ""]
        removed = [add1]
        for slot in (0, 1):                                  # Format 1, then Format 2
            add2 = g.producer(add1.inputs[slot])
            if _bias_add(g, add2):
                inputs[slot] = add2.inputs[0]
                inputs.append(add2.inputs[1])
                removed.append(add2)
                break
        attrs = {"epsilon": ln.attrs.get("epsilon", 1e-12)}
        g.swap(ln, Node(ln.name, "SkipLayerNormalization", MS, tuple(inputs), ln.outputs[:1], attrs))
        g.remove(*removed)


# -- MatMul scaled by a constant -> FusedMatMul(alpha) ---------------------------------------------------
def _scalar_scale(g, node: Node, data: str):
    """The factor a Mul or Div by a scalar constant applies to `data` (Div: 1 / c, in float32)."""
    if node.domain or node.op not in ("Mul", "Div"):
        return None
    c_name = _other(node, data)
    if node.op == "Div" and node.inputs[0] != data:
        return None
    c = g.scalar_const(c_name)
    if c is None or c.dtype != F32:
        return None
    return F32(c) if node.op == "Mul" else F32(F32(1) / F32(c))


def _matmul_scale(g) -> None:
    for mm in [n for n in g.nodes if n.op == "MatMul" and not n.domain]:
        if any(t in g.consts for t in mm.inputs):
            continue                                    # a constant weight: ORT's MatMul prepacks it
        alpha = F32(1)
        inputs, removed = list(mm.inputs), []
        for slot in (0, 1):
            p = g.producer(mm.inputs[slot])
            if p is not None and len(g.readers(p.outputs[0])) == 1 and p.outputs[0] not in g.outputs:
                data = next((t for t in p.inputs if t not in g.consts), None)
                s = data is not None and _scalar_scale(g, p, data)
                if s is not None and s is not False:
                    alpha, inputs[slot] = F32(alpha * s), data
                    removed.append(p)
        outputs = mm.outputs
        after = g.readers(mm.outputs[0])
        if len(after) == 1 and mm.outputs[0] not in g.outputs:
            s = _scalar_scale(g, after[0][0], mm.outputs[0])
            if s is not None:
                alpha = F32(alpha * s)
                removed.append(after[0][0])
                outputs = after[0][0].outputs
        if not removed:
            continue
        last = removed[-1] if outputs != mm.outputs else mm
        g.swap(last, Node(mm.name, "FusedMatMul", MS, tuple(inputs), outputs, {"alpha": float(alpha)}))
        g.remove(*[n for n in [mm] + removed if n is not last])

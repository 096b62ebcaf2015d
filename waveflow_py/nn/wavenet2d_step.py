"""Row-by-row (incremental) evaluation of :class:`~waveflow_py.nn.wavenet2d.WaveNet2D`: the cache of
WaveFlow's fast inverse (Ping et al. 2020; the "convolution queue" of Paine et al. 2016, "Fast Wavenet
Generation Algorithm", extended to 2-D).

Every layer keeps a ring buffer of its last ``(kh - 1) * dh + 1`` input rows (per height phase), so each
row of every layer is computed exactly once, for any height ``h`` and any height-dilation cycle. Rows
are stored channel-first and already unfolded along the width, so that a row of the ``(kh, kw)``
convolution, *together with* the mel conditioning (1x1 conv) and the biases, is ONE GEMM
``[2C x (kh*kw*C + n_mels + 1)] x [(kh*kw*C + n_mels + 1) x B*W]`` on a contiguous view (for r = 64 at
1 s of 22.05 kHz audio: [128 x 657] x [657 x 1386]). The GEMM shape is what makes CPUs fast here: a
large GEMM instead of ``conv2d`` on a single row (docs/implementation-notes.md). The residual 1x1 conv
is one more small GEMM per layer and row; the skips of all layers and the end conv are one GEMM per row.

:func:`start_rows` folds weight norm (and everything else, see its docstring) into plain tensors of the
compute dtype without touching the module, so there is nothing to go stale: a new ``start`` reads the
current weights. It preallocates every buffer (recycling those of a finished state) and every view;
:func:`step_row` then allocates nothing but a handful of views.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from waveflow_py.nn.weight_norm import folded_weight

__all__ = ["RowNet", "WaveNet2DState", "start_rows", "step_row"]


class RowNet(Protocol):
    """What :func:`start_rows` reads of a 2-D WaveNet (:class:`~waveflow_py.nn.wavenet2d.WaveNet2D`
    provides it; this module does not import it, so the dependency runs one way).

    Each of ``layers`` has ``conv``, ``cond``, ``res_skip`` (weight-normed convs), ``residual_channels``,
    ``kernel_size``, ``dilation`` ``(dh, dw)`` and ``padding`` (``F.pad`` order, width left first).
    """

    in_channels: int
    residual_channels: int
    aux_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    layers: Any  # an nn.ModuleList of layers as described above
    start_conv: Any  # weight-normed 1x1 convs
    end_conv: Any


@dataclass
class _LayerPlan:
    """Folded weights and ring buffer of one layer (everything channel-first: ``(features, B * W)``).

    ``ring`` has shape ``(dh, kh * kw * C + A + 1, B * W)``. The input row ``r`` of height phase
    ``p = r % dh`` goes, already unfolded along the width, to block ``q % kh`` (``q = r // dh``) of
    ``ring[p]``; the next ``A`` rows of ``ring[p]`` receive the conditioning row, and the last row is
    constant ones (for the bias). The im2col matrix of a convolution row is then exactly ``ring[p]``, a
    contiguous view, never a copy; the ring's rotation is absorbed by ``kh`` pre-rotated copies of the
    weight (``weights[q % kh]``). Rows above the top stay zero.
    """

    weights: Tensor  # (kh, 2C, kh*kw*C + A + 1): [rotated conv taps | cond 1x1 | bias], see start_rows
    res_w: Tensor | None  # (C, C + 1): [W_res | b_res]; None for the last layer
    dh: int
    ring: Tensor
    gate: Tensor  # (C + 1, B * W): this layer's gate (last row ones), a view into WaveNet2DState.gates
    # views[p][s] for height phase p and rotation s: (im2col matrix, weight, [(dst, src) copies], aux dst)
    views: list[list[tuple[Tensor, Tensor, list[tuple[Tensor, Tensor]], Tensor]]]


@dataclass
class WaveNet2DState:
    """Everything the incremental pass needs; created by :func:`start_rows`, advanced by :func:`step_row`.

    ``row`` is the index of the next output row; ``height`` the number of rows the conditioning covers.
    Work buffers are channel-first ``(features, B * W)`` (column ``b * W + w``) and reused for every row.
    """

    batch: int
    width: int
    height: int
    dtype: torch.dtype
    aux: Tensor  # (H, A, B * W): the conditioning rows in the compute dtype
    start_w: Tensor  # (C, in + 1): [W_start | b_start]
    layers: list[_LayerPlan]
    skip_w: Tensor  # (out, L * (C + 1)): every layer's [W_end @ W_skip | W_end @ b_skip] (+ b_end once)
    x_in: Tensor  # (in + 1, B * W), last row ones (bias)
    h: Tensor  # (C, B * W)
    pre: Tensor  # (2C, B * W)
    sig: Tensor  # (2C, B * W)
    gates: Tensor  # (L * (C + 1), B * W): every layer's gate, each with a last row of ones (bias)
    out: Tensor  # (out, B * W)
    row: int = 0
    kernel_size: tuple[int, int] = field(default=(3, 3))


def _width_copies(width: int, kw: int, dw: int, pad_left: int) -> list[tuple[int, int, int, int, int]]:
    """For each width tap ``t``: output column ``j`` reads input column ``j + t * dw - pad_left``."""
    copies = []
    for t in range(kw):
        off = t * dw - pad_left
        lo, hi = max(0, -off), min(width, width - off)
        if lo < hi:
            copies.append((t, lo, hi, lo + off, hi + off))
    return copies


def _rotated_into(out: Tensor, w: Tensor) -> None:
    """Write conv weight ``w`` ``(2C, C, kh, kw)`` into ``out[s, :, :kh*kw*C]`` for each ring rotation
    ``s = q % kh``: block ``j`` of the ring then holds height tap ``(j - s + kh - 1) % kh`` (tap 0 is
    the oldest row, the top of the kernel)."""
    kh, kw, c = w.shape[2], w.shape[3], w.shape[1]
    taps = w.permute(2, 0, 3, 1)  # (kh, 2C, kw, C)
    for s in range(kh):
        for j in range(kh):
            out[s, :, j * kw * c : (j + 1) * kw * c].view(-1, kw, c).copy_(taps[(j - s + kh - 1) % kh])


def _with_bias(w: Tensor, b: Tensor) -> Tensor:
    """``[W | b]``: the bias as one more input column (the inputs carry a row of ones)."""
    return torch.cat([w, b[:, None]], dim=1)


class _Pool:
    """Buffers of a finished state, handed out again by shape: fresh large allocations cost page faults
    (a large share of ``start``, docs/implementation-notes.md), and every flow of a model has the same
    shapes."""

    def __init__(self, old: object, device: torch.device, dtype: torch.dtype) -> None:
        self.device, self.dtype = device, dtype
        self.free: dict[tuple[int, ...], list[Tensor]] = {}
        if isinstance(old, WaveNet2DState):
            big = [old.aux, old.x_in, old.h, old.pre, old.sig, old.gates, old.out]
            big += [t for plan in old.layers for t in (plan.weights, plan.ring)]
            # inference tensors (made under torch.inference_mode) cannot be updated outside it
            usable = torch.is_inference_mode_enabled() or not any(t.is_inference() for t in big)
            for t in big if usable else []:
                if t.device == device and t.dtype == dtype:
                    self.free.setdefault(tuple(t.shape), []).append(t)

    def empty(self, *shape: int) -> Tensor:
        found = self.free.get(shape)
        return found.pop() if found else torch.empty(shape, device=self.device, dtype=self.dtype)


def start_rows(
    net: RowNet,
    aux: Tensor | None,
    *,
    batch: int,
    width: int,
    dtype: torch.dtype | None = None,
    reuse: object = None,
) -> WaveNet2DState:
    """Prepare the incremental pass of ``net`` over conditioning ``aux`` ``(B, A, H, W)``.

    ``reuse``: a finished state (e.g. of the previous flow) whose buffers may be recycled; it must not
    be stepped again afterwards.

    Folding (in the parameters' dtype, cast once to ``dtype``): weight norm; the conditioning 1x1 conv
    and both biases into the dilated conv's GEMM as ``A + 1`` extra columns (one GEMM per layer and row
    computes ``conv + cond + bias``, instead of an up-front fused 1x1 conv of all layers, whose
    K = n_mels GEMM is slow and writes a large intermediate: docs/implementation-notes.md); the end 1x1
    conv into every layer's skip weights (the skips are only ever summed and projected, so
    ``end(sum_l skip_l) = sum_l (W_end @ W_skip_l) @ gate_l`` + biases); and a factor -2 into the tanh
    half of the gate so that one sigmoid serves both halves: ``tanh(a) = 1 - 2 sigmoid(-2a)``, so
    ``gate = sb - 2 * sigmoid(-2a) * sb`` is one ``addcmul`` (scaling by a power of two is exact).
    """
    aux = _checked_aux(net, aux, batch, width)
    ref = net.end_conv.weight
    dtype = dtype or ref.dtype
    c, m, n_layers = net.residual_channels, batch * width, len(net.layers)
    pool = _Pool(reuse, ref.device, dtype)
    with torch.no_grad():
        aux_rows = pool.empty(aux.shape[2], net.aux_channels, m)
        aux_rows.view(aux.shape[2], net.aux_channels, batch, width).copy_(aux.permute(2, 1, 0, 3))
        x_in, h, gates = (
            pool.empty(net.in_channels + 1, m),
            pool.empty(c, m),
            pool.empty(n_layers * (c + 1), m),
        )
        x_in[-1] = 1.0
        gates.view(n_layers, c + 1, m)[:, -1] = 1.0
        plans, skip_w = _layer_plans(net, pool, h, gates, batch, width, dtype)
        start_w = _with_bias(folded_weight(net.start_conv).flatten(1), net.start_conv.bias).to(dtype)
    return WaveNet2DState(
        batch=batch,
        width=width,
        height=aux.shape[2],
        dtype=dtype,
        aux=aux_rows,
        start_w=start_w,
        layers=plans,
        skip_w=skip_w,
        x_in=x_in,
        h=h,
        pre=pool.empty(2 * c, m),
        sig=pool.empty(2 * c, m),
        gates=gates,
        out=pool.empty(net.out_channels, m),
        kernel_size=net.kernel_size,
    )


def _checked_aux(net: RowNet, aux: Tensor | None, batch: int, width: int) -> Tensor:
    if aux is None:
        raise ValueError("WaveNet2D.start: expected the conditioning aux (B, A, H, W), got None")
    if aux.dim() != 4 or aux.shape[0] != batch or aux.shape[1] != net.aux_channels or aux.shape[3] != width:
        raise ValueError(
            f"WaveNet2D.start: expected aux of shape ({batch}, {net.aux_channels}, H, {width}), "
            f"got {tuple(aux.shape)}"
        )
    return aux


def _layer_plans(
    net: RowNet, pool: _Pool, h: Tensor, gates: Tensor, batch: int, width: int, dtype: torch.dtype
) -> tuple[list[_LayerPlan], Tensor]:
    """Every layer's folded weights, ring and views, and the skip weights of all layers (with the end
    conv folded in) as one ``(out, L * (C + 1))`` matrix in ``dtype``."""
    c, n_layers = net.residual_channels, len(net.layers)
    end_w = folded_weight(net.end_conv).flatten(1)  # (out, C)
    gate_scale = torch.ones(2 * c, 1, device=end_w.device, dtype=end_w.dtype)
    gate_scale[:c] = -2.0  # the tanh half: tanh(a) = 1 - 2 sigmoid(-2a)
    plans, skips = [], []
    for idx, layer in enumerate(net.layers):
        weights, ring = _folded_conv(layer, gate_scale, pool, net.aux_channels, batch * width)
        rs_w = folded_weight(layer.res_skip).flatten(1)  # (2C, C): [residual ; skip]
        rs_b = layer.res_skip.bias.detach()
        skip_b = end_w @ rs_b[c:] + (net.end_conv.bias if idx == 0 else 0.0)
        skips.append(_with_bias(end_w @ rs_w[c:], skip_b))
        plans.append(
            _LayerPlan(
                weights=weights,
                res_w=None if idx == n_layers - 1 else _with_bias(rs_w[:c], rs_b[:c]).to(dtype),
                dh=layer.dilation[0],
                ring=ring,
                gate=gates[idx * (c + 1) : (idx + 1) * (c + 1)],
                views=_ring_views(layer, ring, weights, h.view(c, batch, width)),
            )
        )
    return plans, torch.cat(skips, dim=1).to(dtype)


def _folded_conv(layer: Any, gate_scale: Tensor, pool: _Pool, a: int, m: int) -> tuple[Tensor, Tensor]:
    """A layer's ``(kh, 2C, kh*kw*C + A + 1)`` weights ``[rotated conv taps | cond 1x1 | bias]`` (gate
    scale folded in) and its ring ``(dh, kh*kw*C + A + 1, m)`` (conv rows zero, last row ones)."""
    c = layer.residual_channels
    kh, kw = layer.kernel_size
    k_conv = kh * kw * c
    w = folded_weight(layer.conv) * gate_scale[:, :, None, None]  # (2C, C, kh, kw)
    cond = _with_bias(folded_weight(layer.cond).flatten(1), layer.cond.bias + layer.conv.bias)
    weights = pool.empty(kh, 2 * c, k_conv + a + 1)
    _rotated_into(weights, w)
    weights[:, :, k_conv:] = cond * gate_scale
    ring = pool.empty(layer.dilation[0], k_conv + a + 1, m)
    ring[:, :k_conv].zero_()  # the conditioning rows are overwritten every row
    ring[:, -1] = 1.0
    return weights, ring


def _ring_views(
    layer: Any, ring: Tensor, weights: Tensor, h3: Tensor
) -> list[list[tuple[Tensor, Tensor, list[tuple[Tensor, Tensor]], Tensor]]]:
    """``views[p][s]`` for height phase ``p`` and ring rotation ``s``: (im2col matrix, weight, the
    ``(dst, src)`` copies of the input row ``h3 (C, B, W)`` into the ring, the conditioning rows)."""
    c = layer.residual_channels
    kh, kw = layer.kernel_size
    k_conv = kh * kw * c
    copies = _width_copies(h3.shape[2], kw, layer.dilation[1], layer.padding[0])
    views = []
    for p in range(layer.dilation[0]):
        cols = ring[p]
        per_rotation = []
        for r in range(kh):
            slot = cols[r * kw * c : (r + 1) * kw * c].view(kw, c, h3.shape[1], h3.shape[2])
            pairs = [(slot[t, :, :, lo:hi], h3[:, :, slo:shi]) for t, lo, hi, slo, shi in copies]
            per_rotation.append((cols, weights[r], pairs, cols[k_conv:-1]))
        views.append(per_rotation)
    return views


def step_row(state: WaveNet2DState, row: Tensor) -> Tensor:
    """Feed input row ``row`` ``(B, in, W)`` (row index ``state.row``); return output row ``(B, out, W)``.

    The result is a view into a buffer that the next call overwrites: use it before stepping again.
    """
    i = state.row
    if i >= state.height:
        raise ValueError(f"WaveNet2D.step: the conditioning covers {state.height} rows, asked for row {i}")
    b, w = state.batch, state.width
    c = state.h.shape[0]
    kh = state.kernel_size[0]
    pre, sig, aux = state.pre, state.sig, state.aux[i]
    sig_a, sig_b = sig[:c], sig[c:]
    with torch.no_grad():
        state.x_in[:-1].view(-1, b, w).copy_(row.transpose(0, 1))
        torch.mm(state.start_w, state.x_in, out=state.h)
        for plan in state.layers:
            cols, weight, pairs, aux_dst = plan.views[i % plan.dh][(i // plan.dh) % kh]
            for dst, src in pairs:  # this layer's input row, unfolded along the width, into the ring
                dst.copy_(src)
            aux_dst.copy_(aux)
            torch.mm(weight, cols, out=pre)  # conv + cond + bias: one GEMM
            # gate = tanh(a) * sigmoid(b), the a half pre-scaled by -2: sb - 2 * sigmoid(-2a) * sb
            torch.sigmoid(pre, out=sig)
            torch.addcmul(sig_b, sig_a, sig_b, value=-2.0, out=plan.gate[:c])
            if plan.res_w is not None:
                state.h.addmm_(plan.res_w, plan.gate)
        torch.mm(state.skip_w, state.gates, out=state.out)  # every layer's skip + the end conv at once
    state.row = i + 1
    return state.out.view(-1, b, w).transpose(0, 1)

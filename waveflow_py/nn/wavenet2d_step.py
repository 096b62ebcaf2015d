"""Row-by-row (incremental) evaluation of :class:`~waveflow_py.nn.wavenet2d.WaveNet2D`: the cache of
WaveFlow's fast inverse (Ping et al. 2020, Sec. 3.3: "the convolution queue" of Paine et al. 2016,
"Fast Wavenet Generation Algorithm", extended to 2-D).

Every layer keeps a ring buffer of its last ``(kh - 1) * dh + 1`` input rows, so each row of every
layer is computed exactly once, for any height ``h`` and any height-dilation cycle. Rows are stored
channel-first and already unfolded along the width, in a ring, so that a row of the
``(kh, kw)`` convolution is ONE GEMM ``[2C x kh*kw*C] x [kh*kw*C x B*W]`` on a contiguous view. The GEMM shape is what makes CPUs fast
here, far faster than ``conv2d`` on a single row, especially in bfloat16.

:func:`start_rows` folds weight norm into plain tensors of the compute dtype (never touching the
module, so there is nothing to go stale: a new ``start`` reads the current weights), computes every
layer's mel conditioning for every row with **one** fused 1x1 conv, and preallocates every buffer;
:func:`step_row` then allocates nothing but views.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from waveflow_py.nn.weight_norm import folded_weight

if TYPE_CHECKING:  # pragma: no cover
    from waveflow_py.nn.wavenet2d import WaveNet2D

__all__ = ["WaveNet2DState", "start_rows", "step_row"]


@dataclass
class _LayerPlan:
    """Folded weights and ring buffer of one layer (everything channel-first: ``(features, B * W)``).

    ``ring`` has shape ``(dh, kh, kw * C, B * W)``: the input row ``r`` of height phase ``p = r % dh``
    goes, already unfolded along the width, to position ``q % kh`` (``q = r // dh``) of phase ``p``. The
    ``kh`` rows a convolution row needs are then exactly ``ring[p]``: the im2col matrix
    ``(kh * kw * C, B * W)`` is a contiguous view, never a copy; the ring's rotation is absorbed by
    ``kh`` pre-rotated copies of the weight (``weights[q % kh]``). Rows above the top stay zero.
    """

    weights: Tensor  # (kh, 2C, kh * kw * C): rotated conv weights; the tanh half pre-scaled by 2
    out_w: Tensor  # (C + out, C) or (out, C) for the last layer: [residual ; end_conv @ skip]
    out_b: Tensor  # (C + out, 1) or (out, 1)
    dh: int
    ring: Tensor
    copies: list[tuple[int, int, int, int, int]]  # (tap, dst_lo, dst_hi, src_lo, src_hi) along W


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
    cond: Tensor  # (L, 2C, H, B * W): every layer's conditioning (+ conv bias), per row
    start_w: Tensor  # (C, in)
    start_b: Tensor  # (C, 1)
    layers: list[_LayerPlan]
    x_in: Tensor  # (in, B * W)
    h: Tensor  # (C, B * W)
    pre: Tensor  # (2C, B * W)
    sig: Tensor  # (2C, B * W)
    gate: Tensor  # (C, B * W)
    rs: Tensor  # (C + out, B * W)
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


def _rotated(w: Tensor, kh: int) -> Tensor:
    """``(2C, C, kh, kw) -> (kh, 2C, kh * kw * C)``: for ring rotation ``s = q % kh``, position ``j`` of
    the ring holds height tap ``(j - s + kh - 1) % kh`` (tap 0 = the oldest row, the top of the kernel)."""
    taps = w.permute(2, 0, 3, 1)  # (kh, 2C, kw, C)
    out = []
    for s in range(kh):
        order = [(j - s + kh - 1) % kh for j in range(kh)]
        out.append(torch.cat([taps[k].flatten(1) for k in order], dim=1))
    return torch.stack(out)


def start_rows(
    net: WaveNet2D, aux: Tensor | None, *, batch: int, width: int, dtype: torch.dtype | None = None
) -> WaveNet2DState:
    """Prepare the incremental pass of ``net`` over conditioning ``aux`` ``(B, A, H, W)``.

    Folding (in the parameters' dtype, cast once to ``dtype``): weight norm; the dilated conv's bias
    into the conditioning; the end 1x1 conv into every layer's skip weights (the skips are only ever
    summed and projected, so ``end(sum_l skip_l) = sum_l (W_end @ W_skip_l) @ gate_l`` + biases); and a
    factor 2 into the tanh half of the gate so that one sigmoid serves both halves
    (``tanh(a) = 2 sigmoid(2a) - 1``; scaling by a power of two is exact).
    """
    ref = net.end_conv.weight
    dtype = dtype or ref.dtype
    device = ref.device
    c, m = net.residual_channels, batch * width
    kh, kw = net.kernel_size
    n_layers = len(net.layers)
    if aux is None:
        raise ValueError("WaveNet2D.start: expected the conditioning aux (B, A, H, W), got None")
    if aux.dim() != 4 or aux.shape[0] != batch or aux.shape[1] != net.aux_channels or aux.shape[3] != width:
        raise ValueError(
            f"WaveNet2D.start: expected aux of shape ({batch}, {net.aux_channels}, H, {width}), "
            f"got {tuple(aux.shape)}"
        )
    height = aux.shape[2]
    gate_scale = torch.ones(2 * c, device=device, dtype=ref.dtype)
    gate_scale[:c] = 2.0
    with torch.no_grad():
        # one fused 1x1 conv gives every layer's conditioning; the dilated conv's bias is folded in
        wc = torch.cat([folded_weight(layer.cond).flatten(1) * gate_scale[:, None] for layer in net.layers])
        bc = torch.cat([(layer.cond.bias + layer.conv.bias) * gate_scale for layer in net.layers])
        flat = aux.permute(1, 2, 0, 3).reshape(net.aux_channels, height * m).to(dtype)  # (A, H*B*W)
        cond = torch.addmm(bc.to(dtype)[:, None], wc.to(dtype), flat).view(n_layers, 2 * c, height, m)
        end_w = folded_weight(net.end_conv).flatten(1)  # (out, C)
        end_b = net.end_conv.bias.detach().clone()
        plans = []
        for idx, layer in enumerate(net.layers):
            w = folded_weight(layer.conv) * gate_scale[:, None, None, None]  # (2C, C, kh, kw)
            rs_w = folded_weight(layer.res_skip).flatten(1)  # (2C, C): [residual ; skip]
            rs_b = layer.res_skip.bias.detach()
            skip_w, skip_b = end_w @ rs_w[c:], end_w @ rs_b[c:]
            if idx == 0:
                skip_b = skip_b + end_b
            last = idx == n_layers - 1
            out_w = skip_w if last else torch.cat([rs_w[:c], skip_w])
            out_b = skip_b if last else torch.cat([rs_b[:c], skip_b])
            dh, dw = layer.dilation
            plans.append(
                _LayerPlan(
                    weights=_rotated(w, kh).to(dtype).contiguous(),
                    out_w=out_w.to(dtype).contiguous(),
                    out_b=out_b.to(dtype)[:, None],
                    dh=dh,
                    ring=torch.zeros(dh, kh, kw * c, m, device=device, dtype=dtype),
                    copies=_width_copies(width, kw, dw, layer.padding[0]),
                )
            )
        start_w = folded_weight(net.start_conv).flatten(1).to(dtype).contiguous()
    new = lambda n: torch.empty(n, m, device=device, dtype=dtype)  # noqa: E731
    return WaveNet2DState(
        batch=batch,
        width=width,
        height=height,
        dtype=dtype,
        cond=cond,
        start_w=start_w,
        start_b=net.start_conv.bias.detach().to(dtype)[:, None],
        layers=plans,
        x_in=new(net.in_channels),
        h=new(c),
        pre=new(2 * c),
        sig=new(2 * c),
        gate=new(c),
        rs=new(c + net.out_channels),
        out=new(net.out_channels),
        kernel_size=(kh, kw),
    )


def step_row(state: WaveNet2DState, row: Tensor) -> Tensor:
    """Feed input row ``row`` ``(B, in, W)`` (row index ``state.row``); return output row ``(B, out, W)``.

    The result is a view into a buffer that the next call overwrites: use it before stepping again.
    """
    i = state.row
    if i >= state.height:
        raise ValueError(f"WaveNet2D.step: the conditioning covers {state.height} rows, asked for row {i}")
    b, w = state.batch, state.width
    c, m = state.h.shape
    kh, kw = state.kernel_size
    n_layers = len(state.layers)
    with torch.no_grad():
        state.x_in.view(-1, b, w).copy_(row.transpose(0, 1))
        torch.addmm(state.start_b, state.start_w, state.x_in, out=state.h)
        h3 = state.h.view(c, b, w)
        for idx, plan in enumerate(state.layers):
            dh = plan.dh
            p, q = i % dh, i // dh
            slot = plan.ring[p, q % kh].view(kw, c, b, w)
            for t, lo, hi, slo, shi in plan.copies:
                slot[t, :, :, lo:hi].copy_(h3[:, :, slo:shi])
            cols = plan.ring[p].view(kh * kw * c, m)  # contiguous (see _LayerPlan)
            torch.addmm(state.cond[idx, :, i], plan.weights[q % kh], cols, out=state.pre)
            # gate = tanh(a) * sigmoid(b) with a pre-scaled by 2: (2 sigmoid(2a) - 1) * sigmoid(b)
            torch.sigmoid(state.pre, out=state.sig)
            sa, sb = state.sig[:c], state.sig[c:]
            torch.mul(sa, sb, out=state.gate)
            state.gate.mul_(2).sub_(sb)
            if idx == n_layers - 1 and idx == 0:
                torch.addmm(plan.out_b, plan.out_w, state.gate, out=state.out)
            elif idx == n_layers - 1:
                state.out.addmm_(plan.out_w, state.gate).add_(plan.out_b)
            else:
                torch.addmm(plan.out_b, plan.out_w, state.gate, out=state.rs)
                state.h.add_(state.rs[:c])
                if idx == 0:
                    state.out.copy_(state.rs[c:])
                else:
                    state.out.add_(state.rs[c:])
    state.row = i + 1
    return state.out.view(-1, b, w).transpose(0, 1)

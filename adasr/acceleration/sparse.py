"""Sparse momentum (Dettmers & Zettlemoyer 2019), the training half of SMFDM: a network trained from scratch with
a fixed fraction of its weights, the others held at exactly zero.

Every prunable weight W_l (the conv and linear weight tensors; biases and normalisation scales stay dense, as in
``sparselearning``) has a boolean mask M_l, initialised at random with density d in every layer. After each
optimiser step the weights are masked (W_l ← W_l ⊙ M_l) and, every ``update_every`` steps:

1. **Redistribution** (the paper's eq. for the layer shares): with the momentum m (Adam's first moment ``exp_avg``,
   SGD's ``momentum_buffer``), each layer's mean momentum magnitude over its active weights

       μ_l = mean_{i ∈ M_l} |m_i|,     s_l = μ_l / Σ_k μ_k;

2. **Prune**: each layer loses the ⌈p_t · n_l⌉ active weights of smallest |W| (n_l its active count);
3. **Regrow**: the total removed R = Σ_l r_l is given back as ⌊s_l · R⌋ weights per layer (capped by the layer's
   free slots, the overflow handed to the other layers in proportion to their shares), each layer taking the
   inactive positions of largest |m|; regrown weights start at 0 (their Adam moments are reset).

The prune rate decays with a cosine, p_t = p_min + (p_0 − p_min)·(1 + cos(π·t/T))/2 (``sparselearning``'s
``CosineDecay``: p_0 = 0.5, p_min = 0.005). The total density stays d; the per-layer densities move towards the
layers whose weights keep receiving gradient.

What it buys is storage, not speed on a CPU: :func:`sparse_storage_bytes` (indices + values) and
:func:`csr_unet` (every masked conv run as im2col + a CSR sparse × dense product), measured against dense kernels
on the same masked weights by ``adasr bench sparse``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class SparseConfig:
    """Sparse momentum's knobs (defaults: ``sparselearning``'s, with SMFDM's density 0.15)."""

    density: float = 0.15
    prune_rate: float = 0.5
    prune_rate_min: float = 0.005
    update_every: int = 100

    def __post_init__(self) -> None:
        if not 0.0 < self.density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {self.density}")
        if not 0.0 <= self.prune_rate_min <= self.prune_rate < 1.0:
            raise ValueError(f"need 0 <= prune_rate_min <= prune_rate < 1, got {self.prune_rate_min}, {self.prune_rate}")
        if self.update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {self.update_every}")

    def to_dict(self) -> dict:
        return asdict(self)


def prunable(module: nn.Module) -> dict[str, nn.Parameter]:
    """The weights sparse momentum masks: every parameter with ≥ 2 dimensions (conv and linear weights), by name."""
    return {n: p for n, p in module.named_parameters() if p.ndim >= 2}


def prune_rate(step: int, total: int, config: SparseConfig) -> float:
    """p_t = p_min + (p_0 − p_min)·(1 + cos(π·min(t, T)/T))/2 (cosine decay over the run of T steps)."""
    frac = min(1.0, step / max(1, total))
    return config.prune_rate_min + (config.prune_rate - config.prune_rate_min) * 0.5 * (1 + math.cos(math.pi * frac))


def redistribution_shares(mean_momentum: dict[str, float]) -> dict[str, float]:
    """s_l = μ_l / Σ_k μ_k (μ_l: the mean |momentum| over layer l's active weights; NaN or no active weight → 0)."""
    clean = {k: (0.0 if not math.isfinite(v) else max(0.0, v)) for k, v in mean_momentum.items()}
    total = sum(clean.values())
    if total <= 0:
        return {k: 1.0 / len(clean) for k in clean}
    return {k: v / total for k, v in clean.items()}


def magnitude_prune(weight: torch.Tensor, mask: torch.Tensor, rate: float) -> tuple[torch.Tensor, int]:
    """Remove the ⌈rate · n⌉ active weights of smallest |W| (n = mask.sum()); returns (new mask, number removed)."""
    n = int(mask.sum())
    k = min(n, math.ceil(rate * n))
    if k == 0:
        return mask.clone(), 0
    score = weight.detach().abs().float().flatten().masked_fill(~mask.flatten(), float("inf"))
    idx = torch.topk(score, k, largest=False).indices
    new = mask.clone().flatten()
    new[idx] = False
    return new.view_as(mask), k


def momentum_regrow(momentum: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Activate the k inactive positions of largest |momentum| (k is capped by the free slots); returns the mask."""
    free = int((~mask).sum())
    k = min(k, free)
    if k <= 0:
        return mask.clone()
    score = momentum.detach().abs().float().flatten().masked_fill(mask.flatten(), -1.0)
    idx = torch.topk(score, k).indices
    new = mask.clone().flatten()
    new[idx] = True
    return new.view_as(mask)


def regrowth_counts(removed: int, shares: dict[str, float], capacity: dict[str, int]) -> dict[str, int]:
    """Split ``removed`` weights over the layers by ``shares``, each at most its ``capacity`` (free slots after
    pruning); what a full layer cannot take goes to the others in proportion to their shares, until all is placed
    or every layer is full. Integer counts summing to min(removed, Σ capacity)."""
    counts = {k: 0 for k in shares}
    left = min(removed, sum(capacity.values()))
    open_ = {k for k in shares if capacity[k] > 0}
    while left > 0 and open_:
        total = sum(shares[k] for k in open_)
        weights = {k: (shares[k] / total if total > 0 else 1.0 / len(open_)) for k in open_}
        raw = {k: left * w for k, w in weights.items()}
        give = {k: min(capacity[k] - counts[k], math.floor(raw[k])) for k in open_}
        placed = sum(give.values())
        if placed == 0:  # fractions only: hand the remainder out one by one, largest fraction first
            for k in sorted(open_, key=lambda k: -(raw[k] - math.floor(raw[k]))):
                if left == 0:
                    break
                if counts[k] < capacity[k]:
                    counts[k] += 1
                    left -= 1
        else:
            for k, g in give.items():
                counts[k] += g
            left -= placed
        open_ = {k for k in open_ if counts[k] < capacity[k]}
    return counts


class SparseMomentum:
    """Masks and the prune / regrow / redistribute cycle for one model trained with ``optimizer``.

    Use: build after the optimiser; call :meth:`step` after every ``optimizer.step()`` (it masks the weights and,
    every ``update_every`` steps, runs :meth:`update`). ``state_dict`` holds the masks and the update history (for
    checkpoints; tensors and plain numbers only). ``generator`` draws the random initial masks.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: SparseConfig, total_steps: int,
                 generator: torch.Generator | None = None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.config = config
        self.total_steps = int(total_steps)
        self.params = prunable(model)
        gen = generator or torch.Generator().manual_seed(0)
        self.masks: dict[str, torch.Tensor] = {}
        for name, p in self.params.items():
            n = p.numel()
            k = max(1, round(config.density * n))
            perm = torch.randperm(n, generator=gen)[:k]
            m = torch.zeros(n, dtype=torch.bool)
            m[perm] = True
            self.masks[name] = m.view(p.shape).to(p.device)
        self.history: list[dict[str, Any]] = []
        self.apply_mask()

    # -- masks ---------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def apply_mask(self, module: nn.Module | None = None) -> None:
        """W_l ← W_l ⊙ M_l on ``module`` (default the trained model; pass the EMA copy to mask it too)."""
        params = self.params if module is None else prunable(module)
        for name, m in self.masks.items():
            params[name].mul_(m.to(params[name].dtype))

    def density(self) -> float:
        """Active fraction of all prunable weights."""
        return sum(int(m.sum()) for m in self.masks.values()) / sum(m.numel() for m in self.masks.values())

    def layer_density(self) -> dict[str, float]:
        return {k: float(m.float().mean()) for k, m in self.masks.items()}

    def momentum(self, name: str) -> torch.Tensor:
        """The momentum of weight ``name``: Adam's ``exp_avg`` or SGD's ``momentum_buffer`` (zeros before step 1)."""
        p = self.params[name]
        state = self.optimizer.state.get(p, {})
        for key in ("exp_avg", "momentum_buffer"):
            if key in state and state[key] is not None:
                return state[key]
        return torch.zeros_like(p)

    # -- the cycle -----------------------------------------------------------------------------------------------

    def step(self, step: int) -> dict[str, Any] | None:
        """After ``optimizer.step()`` number ``step`` (1-based): mask, and every ``update_every`` steps (not at the
        last) prune, regrow and redistribute. Returns the update's record or None."""
        self.apply_mask()
        if step % self.config.update_every or step >= self.total_steps:
            return None
        return self.update(step)

    @torch.no_grad()
    def update(self, step: int) -> dict[str, Any]:
        """One prune / regrow / redistribute cycle (module docstring); returns and records its statistics."""
        rate = prune_rate(step, self.total_steps, self.config)
        mean_m = {}
        for name, m in self.masks.items():
            mom = self.momentum(name)
            mean_m[name] = float(mom.abs()[m].float().mean()) if m.any() else 0.0
        shares = redistribution_shares(mean_m)
        removed_total = 0
        removed: dict[str, int] = {}
        for name in self.masks:
            self.masks[name], r = magnitude_prune(self.params[name], self.masks[name], rate)
            removed[name] = r
            removed_total += r
        capacity = {k: int((~m).sum()) for k, m in self.masks.items()}  # just-pruned slots included
        counts = regrowth_counts(removed_total, shares, capacity)
        for name in self.masks:
            before = self.masks[name]
            after = momentum_regrow(self.momentum(name), before, counts[name])
            grown = after & ~before
            self.masks[name] = after
            p = self.params[name]
            p.masked_fill_(grown, 0.0)
            state = self.optimizer.state.get(p, {})
            for key in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
                buf = state.get(key)
                if isinstance(buf, torch.Tensor) and buf.shape == p.shape:
                    buf.masked_fill_(~after, 0.0)
        self.apply_mask()
        record = {"step": int(step), "prune_rate": rate, "removed": removed_total,
                  "regrown": int(sum(counts.values())), "density": self.density(),
                  "layer_density": {k: round(v, 5) for k, v in self.layer_density().items()},
                  "shares": {k: round(v, 6) for k, v in shares.items()}}
        self.history.append(record)
        return record

    # -- checkpoints ---------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"masks": {k: v.cpu() for k, v in self.masks.items()}, "history": list(self.history),
                "config": self.config.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state["masks"]) != set(self.masks):
            raise ValueError("the saved masks belong to another network")
        self.masks = {k: v.to(self.params[k].device).bool() for k, v in state["masks"].items()}
        self.history = list(state.get("history", []))
        self.apply_mask()


# ----------------------------------------------------------------------------------------------- storage and speed
def masks_of(module: nn.Module, threshold: float = 0.0) -> dict[str, torch.Tensor]:
    """The masks of a trained sparse network, read from its weights: |W| > threshold, per prunable weight."""
    return {n: p.detach().abs() > threshold for n, p in prunable(module).items()}


def sparse_storage_bytes(state: dict[str, torch.Tensor], value_bytes: int = 2) -> dict[str, int]:
    """Bytes to store ``state`` dense (``value_bytes`` per value, fp16 = 2) and sparse: every ≥ 2-D tensor as its
    nonzero values plus their flat indices (int32, 4 bytes; or a 1-bit bitmap when that is smaller), 1-D tensors
    dense. Returns {'dense', 'sparse_coo', 'sparse_bitmap', 'nonzeros', 'values'}."""
    dense = coo = bitmap = nnz = total = 0
    for t in state.values():
        n = t.numel()
        total += n
        dense += n * value_bytes
        if t.ndim >= 2:
            k = int((t != 0).sum())
            nnz += k
            coo += k * (value_bytes + 4)
            bitmap += k * value_bytes + math.ceil(n / 8)
        else:
            nnz += n
            coo += n * value_bytes
            bitmap += n * value_bytes
    return {"dense": dense, "sparse_coo": coo, "sparse_bitmap": bitmap, "nonzeros": nnz, "values": total}


#: suffix of the packed mask of a ≥ 2-D tensor in a sparse checkpoint (:func:`pack_sparse`)
MASK_SUFFIX = ".__mask__"


def pack_sparse(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict stored sparse: every ≥ 2-D tensor W becomes its nonzero values in row-major order (1-D) plus
    ``name + MASK_SUFFIX``, the bitmap W ≠ 0 packed 8 positions per byte (uint8, numpy ``packbits`` order) with
    the shape in a small int64 tensor ``name + '.__shape__'``; 1-D tensors stay as they are. Exact:
    :func:`unpack_sparse` restores W bit for bit."""
    import numpy as np

    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if t.ndim < 2:
            out[name] = t
            continue
        flat = t.detach().cpu().flatten()
        nz = flat != 0
        out[name] = flat[nz].clone()
        out[name + MASK_SUFFIX] = torch.from_numpy(np.packbits(nz.numpy()))
        out[name + ".__shape__"] = torch.tensor(list(t.shape), dtype=torch.int64)
    return out


def unpack_sparse(packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The dense state dict of a :func:`pack_sparse` checkpoint (values in their stored dtype)."""
    import numpy as np

    out: dict[str, torch.Tensor] = {}
    for name, t in packed.items():
        if name.endswith(MASK_SUFFIX) or name.endswith(".__shape__"):
            continue
        if name + MASK_SUFFIX not in packed:
            out[name] = t
            continue
        shape = [int(v) for v in packed[name + ".__shape__"]]
        n = math.prod(shape)
        mask = torch.from_numpy(np.unpackbits(packed[name + MASK_SUFFIX].numpy())[:n].astype(bool))
        if int(mask.sum()) != t.numel():
            raise ValueError(f"sparse checkpoint entry {name}: {t.numel()} values for {int(mask.sum())} positions")
        dense = torch.zeros(n, dtype=t.dtype)
        dense[mask] = t
        out[name] = dense.view(shape)
    return out


class CSRConv2d(nn.Module):
    """A conv whose weight is stored as a CSR matrix (C_out, C_in·k·k): y = W_csr · im2col(x) + b.

    The best sparse route PyTorch offers for a conv on a CPU (there is no sparse conv kernel): unfold the input to
    (C_in·k·k, B·H·W) and multiply by the CSR weight. Equal to ``conv`` up to float rounding.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError("CSRConv2d supports groups=1, dilation=1 convs")
        w = conv.weight.detach().float()
        self.out_channels, self.kernel, self.stride, self.padding = w.shape[0], conv.kernel_size, conv.stride, conv.padding
        with warnings.catch_warnings():  # "sparse CSR support is in beta": known, and measured here
            warnings.simplefilter("ignore", UserWarning)
            self.weight_csr = w.reshape(w.shape[0], -1).to_sparse_csr()
        self.bias = None if conv.bias is None else conv.bias.detach().float().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        cols = F.unfold(x.float(), self.kernel, padding=self.padding, stride=self.stride)  # (B, C·k·k, L)
        Ho = (H + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1
        Wo = (W + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1
        cols = cols.transpose(0, 1).reshape(cols.shape[1], -1)  # (C·k·k, B·L)
        y = torch.sparse.mm(self.weight_csr, cols)  # (C_out, B·L)
        y = y.reshape(self.out_channels, B, Ho * Wo).transpose(0, 1).reshape(B, self.out_channels, Ho, Wo)
        if self.bias is not None:
            y = y + self.bias[None, :, None, None]
        return y


def csr_unet(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with every Conv2d replaced by :class:`CSRConv2d` (linear layers stay dense: they act on
    the (B, time_dim) embedding only, a negligible share of the MACs). fp32."""
    import copy

    out = copy.deepcopy(module).float()

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                setattr(parent, name, CSRConv2d(child))
            else:
                swap(child)

    swap(out)
    return out


__all__ = ["MASK_SUFFIX", "CSRConv2d", "pack_sparse", "unpack_sparse", "SparseConfig", "SparseMomentum", "csr_unet", "magnitude_prune", "masks_of",
           "momentum_regrow", "prunable", "prune_rate", "redistribution_shares", "regrowth_counts",
           "sparse_storage_bytes"]

"""The learned complexity estimator: a small CNN trained to predict where one sampling step is not enough.

Target. For an HR crop with condition up(LR), run the shipped diffusion model for **one** DDIM step from pure noise
(t = T−1 → its clean estimate r̂0, which is close to the regression output) and measure the error that remains,

    e(x) = mean_c |up(LR) + r̂0/s − HR| / 2            (image units, [0, 1]),

then smooth it over ``pool``×``pool`` windows: the local error after one step. A tile whose error after one step is
already small has little left for further steps to recover; a tile with a large error is where steps matter.

Network. Input features f = [up(LR) (3 channels, [−1, 1]), log(g + 10⁻³)] with g AdaSR's gradient map
(:func:`~adasr.adaptive.gradient.gradient_map`); four 3×3/1×1 convolutions (4 → 16 → 16 → 16 → 1, dilations
1, 2, 4; SiLU) plus a linear 1×1 skip from f, about 5.3 k parameters, writing log ê (B, 1, H, W):

    log ê = body(f) + w·f + b

so the net starts from (and must beat) a linear function of the log-gradient. Loss: L1 between avg-pooled log ê
and log(pooled e + 10⁻³). :meth:`ComplexityNet.predict` returns ê = exp(log ê) ≥ 0, the estimator's map.

The shipped weights (``complexity_net``) are made by ``tools/train_complexity_net.py`` in a few CPU minutes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .gradient import gradient_map

LOG_FLOOR = 1e-3


@dataclass(frozen=True)
class ComplexityNetConfig:
    """Width of the hidden layers and the smoothing window of the target."""

    width: int = 16
    pool: int = 8

    def to_dict(self) -> dict:
        return asdict(self)


class ComplexityNet(nn.Module):
    """up(LR) (B, 3, H, W) in [−1, 1] → log of the predicted one-step error (B, 1, H, W)."""

    def __init__(self, config: ComplexityNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or ComplexityNetConfig()
        w = c.width
        self.body = nn.Sequential(
            nn.Conv2d(4, w, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w, w, 3, padding=2, dilation=2), nn.SiLU(),
            nn.Conv2d(w, w, 3, padding=4, dilation=4), nn.SiLU(),
            nn.Conv2d(w, 1, 1),
        )
        self.skip = nn.Conv2d(4, 1, 1)
        with torch.no_grad():  # start near the typical log error so early training is about the shape, not the level
            self.body[-1].bias.fill_(math.log(0.02))
            self.skip.weight.zero_()
            self.skip.bias.zero_()

    @staticmethod
    def features(x: torch.Tensor) -> torch.Tensor:
        """f = [x, log(gradient_map(x) + 10⁻³)]: (B, 3, H, W) → (B, 4, H, W)."""
        return torch.cat([x, torch.log(gradient_map(x) + LOG_FLOOR)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W), got {tuple(x.shape)}")
        f = self.features(x)
        return self.body(f) + self.skip(f)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The complexity map ê (B, 1, H, W) ≥ 0: predicted local error after one step, image units."""
        p = next(self.parameters())
        if p.device != x.device:
            self.to(x.device)
        return self.forward(x.to(p.dtype)).exp()


def one_step_error(model, hr: torch.Tensor, pool: int = 8, seed: int = 0, precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
    """(up(LR), e) for HR crops (B, 3, H, W): e (B, 1, H, W) is the local mean error after one DDIM step from
    pure noise (module docstring), pooled over ``pool``×``pool`` windows (stride 1, replicate padding).
    The noise comes from ``torch.Generator().manual_seed(seed)``, as in
    :func:`~adasr.adaptive.complexity.uncertainty_map`: give the two different seeds when comparing them."""
    from ..data import make_pair
    from ..runtime import autocast

    _, up = make_pair(hr, model.config.scale)
    T = model.num_train_timesteps
    g = torch.Generator().manual_seed(seed)
    x_t = torch.randn(hr.shape, generator=g).to(hr)
    t = torch.full((hr.shape[0],), T - 1, dtype=torch.long)
    with torch.no_grad(), autocast(hr.device, precision):  # type: ignore[arg-type]
        out = model.unet(x_t, t, up).float()
    r0 = model.predict_x0(out, x_t, t)
    sr = model.output(r0, up)
    err = (sr - hr).abs().mean(1, keepdim=True) / 2
    return up, smooth(err, pool)


def smooth(e: torch.Tensor, pool: int) -> torch.Tensor:
    """Local mean over pool×pool windows, same size (replicate padding)."""
    if pool <= 1:
        return e
    lo, hi = (pool - 1) // 2, pool // 2
    return F.avg_pool2d(F.pad(e, (lo, hi, lo, hi), mode="replicate"), pool, stride=1)


def loss_fn(log_pred: torch.Tensor, err: torch.Tensor, pool: int) -> torch.Tensor:
    """L1 between the smoothed log prediction and log(e + 10⁻³)."""
    return (smooth(log_pred, pool) - torch.log(err + LOG_FLOOR)).abs().mean()


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (scipy.stats.spearmanr, ties averaged)."""
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a).ravel(), np.asarray(b).ravel()).statistic)


@dataclass(frozen=True)
class ComplexityTrainConfig:
    crops: int = 768
    crop: int = 128
    val_fraction: float = 0.2
    steps: int = 3000
    batch: int = 16
    lr: float = 3e-3
    seed: int = 0
    precision: str = "bf16"


def train_complexity_net(model, config: ComplexityTrainConfig | None = None, net_config: ComplexityNetConfig | None = None,
                         progress: bool = True) -> tuple[ComplexityNet, dict]:
    """Generate one-step error targets with ``model`` on training crops, fit a :class:`ComplexityNet`, and report
    validation rank correlations (per tile of the validation crops) of the net's and the gradient's C_p with the
    true error."""
    from ..data import CropSampler

    c = config or ComplexityTrainConfig()
    nc = net_config or ComplexityNetConfig()
    g = torch.Generator().manual_seed(c.seed)
    sampler = CropSampler.from_names(crop=c.crop)
    ups, errs = [], []
    chunk = 32
    for k in tqdm(range(0, c.crops, chunk), desc="targets", disable=not progress):
        hr = sampler.sample(min(chunk, c.crops - k), g)
        up, e = one_step_error(model, hr, nc.pool, seed=c.seed + k, precision=c.precision)
        ups.append(up)
        errs.append(e)
    up_all, err_all = torch.cat(ups), torch.cat(errs)
    n_val = max(1, int(round(c.val_fraction * len(up_all))))
    up_tr, err_tr, up_va, err_va = up_all[n_val:], err_all[n_val:], up_all[:n_val], err_all[:n_val]
    torch.manual_seed(c.seed)
    net = ComplexityNet(nc)
    opt = torch.optim.AdamW(net.parameters(), lr=c.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c.lr, total_steps=c.steps, pct_start=0.1)
    losses = []
    for step in tqdm(range(c.steps), desc="fit", disable=not progress):
        idx = torch.randint(0, len(up_tr), (c.batch,), generator=g)
        x, e = up_tr[idx], err_tr[idx]
        if step % 2:
            x, e = x.flip(-1), e.flip(-1)
        loss = loss_fn(net(x), e, nc.pool)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    net.eval()
    with torch.no_grad():
        val_loss = float(loss_fn(net(up_va), err_va, nc.pool))
        true_p = err_va.mean(dim=(1, 2, 3)).numpy()
        net_p = net.predict(up_va).mean(dim=(1, 2, 3)).numpy()
        grad_p = gradient_map(up_va).mean(dim=(1, 2, 3)).numpy()
    report = {"train_loss_last100": float(np.mean(losses[-100:])), "val_loss": val_loss, "val_tiles": int(n_val),
              "val_spearman_net": spearman(net_p, true_p), "val_spearman_gradient": spearman(grad_p, true_p),
              "config": asdict(c), "net_config": nc.to_dict()}
    return net, report


def load_complexity_net(name: str = "complexity_net") -> ComplexityNet:
    """The shipped, trained estimator (hash-verified), in eval mode."""
    from ..registry import load_state_dict, model_config

    net = ComplexityNet(ComplexityNetConfig(**model_config(name)))
    net.load_state_dict(load_state_dict(name))
    return net.eval()

"""The MMLE regressor (AdaDiffSR §3.2): a light CNN that predicts a tile's information gain instead of computing
six image-quality metrics at every step.

Input: the tile's state after step i — its new estimate f_i, the change f_i − f_{i−1} since its last step, the
original image feature o = up(LR) (all images in [0, 1], (B, 3, h, w)) and the timestep t (as t/T, a constant
plane) — stacked to (B, 10, h, w). Four stride-2 3×3 convolutions (10 → 16 → 32 → 32 → 32, SiLU), global average
pooling (the paper's "multiple convolutional layers and global average pooling layers"), then t/T again and a
two-layer head write

    (Î^FR, Î^NR) = head(GAP(conv(f_i, f_i − f_{i−1}, o, t/T)), t/T) · target_scale

Targets: the gains of :mod:`adasr.adaptive.information_gain` **against the HR** (the oracle signal: I^FR with
``reference='hr'``, I^NR with NR metrics only in the second half of the trajectory), computed on trajectories of
the shipped model on random crops of the **training photos only**, with uniform schedules of several lengths and
families so the net sees many step sizes. Loss: L2 on the gains divided by ``target_scale`` (their standard
deviation on the training set, stored in the config); the NR output is trained only on steps where NR counts.
The paper trains its regressor with L2 on synthetic LR–HR pairs against the metrics; with the HR known in training,
predicting the HR-referenced gain is the most the regressor can learn, and it is what inference cannot compute.

``tools/train_mmle.py`` builds the data and trains the shipped weights (``mmle_regressor``); its report measures
agreement (Spearman, class agreement) with the computed metrics and the oracle on held-out tiles.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .information_gain import GainConfig, information_gain, representation
from .learned import spearman


@dataclass(frozen=True)
class MMLEConfig:
    """Width of the regressor and the scale of its outputs (the targets' standard deviation)."""

    width: int = 32
    target_scale: tuple[float, float] = (0.01, 0.01)

    def to_dict(self) -> dict:
        return asdict(self)


class MMLERegressor(nn.Module):
    """(f_i, f_{i−1}, o, t) → (Î^FR, Î^NR) (module docstring); images (B, 3, h, w) in [0, 1], t (B,) ints."""

    def __init__(self, config: MMLEConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or MMLEConfig()
        w = c.width
        self.body = nn.Sequential(
            nn.Conv2d(10, 16, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(16, w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.SiLU(),
        )
        self.head = nn.Sequential(nn.Linear(w + 1, w), nn.SiLU(), nn.Linear(w, 2))
        self.register_buffer("scale", torch.tensor(c.target_scale, dtype=torch.float32), persistent=False)

    @staticmethod
    def features(f: torch.Tensor, prev: torch.Tensor, o: torch.Tensor, t: torch.Tensor,
                 num_train_timesteps: int = 1000) -> torch.Tensor:
        """(B, 10, h, w): [f, f − prev, o, t/T]."""
        if not (f.shape == prev.shape == o.shape) or f.ndim != 4 or f.shape[1] != 3:
            raise ValueError(f"f, prev and o must be (B, 3, h, w) of one shape, got {tuple(f.shape)}, "
                             f"{tuple(prev.shape)}, {tuple(o.shape)}")
        tt = (t.float().view(-1, 1, 1, 1) / num_train_timesteps).to(f).expand(f.shape[0], 1, *f.shape[-2:])
        return torch.cat([f, f - prev, o, tt], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (B, 10, h, w) → normalised gains (B, 2) (multiply by ``scale`` for gains)."""
        h = self.body(x).mean(dim=(2, 3))
        return self.head(torch.cat([h, x[:, 9, 0, 0, None]], dim=1))

    @torch.no_grad()
    def predict(self, f: torch.Tensor, prev: torch.Tensor, o: torch.Tensor, t: torch.Tensor,
                num_train_timesteps: int = 1000) -> torch.Tensor:
        """(Î^FR, Î^NR) (B, 2) for estimates f, prev and references o (B, 3, h, w) in [0, 1] at timesteps t (B,)."""
        p = next(self.parameters())
        x = self.features(f.to(p), prev.to(p), o.to(p), t.to(p.device), num_train_timesteps)
        return (self.forward(x) * self.scale).clamp(-1, 1)


def macs_per_call(net: MMLERegressor, shape: tuple[int, int] = (128, 128)) -> int:
    """MACs of one regressor call on one tile (torch.utils.flop_counter)."""
    from ..cost import count_macs

    x = torch.zeros(1, 10, *shape)
    with torch.no_grad():
        return count_macs(lambda: net(x))


# -- data ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GainDataConfig:
    """Trajectories for the regressor's data: ``crops`` random 128² crops of the training photos, sampled by
    uniform runs of each (schedule, N) in ``runs`` with the shipped model."""

    crops: int = 32
    crop: int = 128
    runs: tuple[tuple[str, int], ...] = (("linspace", 4), ("linspace", 8), ("linspace", 16), ("balanced", 3),
                                         ("balanced", 6))
    strip: int = 16
    seed: int = 0
    precision: str = "bf16"


@dataclass
class GainData:
    """One row per (crop, run, step): the images as uint8 (n, 3, h, w) ×3 (f_i, f_{i−1} with f_0 = up(LR), o),
    t, the gains in three signals."""

    f: torch.Tensor
    prev: torch.Tensor
    o: torch.Tensor
    t: torch.Tensor
    crop: torch.Tensor
    run: torch.Tensor
    gains: dict[str, torch.Tensor] = field(default_factory=dict)  # fr_hr, fr_input, nr (nr = 0 where inactive)
    nr_active: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def images(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(x[idx].float() / 255 for x in (self.f, self.prev, self.o))  # type: ignore[return-value]


def _u8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def collect_gain_data(model, config: GainDataConfig | None = None, gain: GainConfig | None = None,
                      progress: bool = True) -> GainData:
    """Run the trajectories of ``config`` and score every step of every crop (module docstring).

    Crops are laid side by side in strips of ``strip`` and sampled by :func:`~adasr.sampling.loop.iterate_tiles`
    with tiles of the crop size and no overlap, so each crop is one tile sampled on its own."""
    from ..data import CropSampler, make_pair
    from ..sampling.loop import iterate_tiles
    from ..sampling.policies import UniformDDIM

    c = config or GainDataConfig()
    g = gain or GainConfig()
    sampler = CropSampler.from_names(crop=c.crop)
    gen = torch.Generator().manual_seed(c.seed)
    hr_all = sampler.sample(c.crops, gen)
    rows: dict[str, list] = {k: [] for k in ("f", "prev", "o", "t", "crop", "run", "fr_hr", "fr_input", "nr", "nr_on")}
    gain_in = replace(g, reference="input")
    gain_hr = replace(g, reference="hr", nr=())
    total = len(c.runs) * math.ceil(c.crops / c.strip)
    bar = tqdm(total=total, desc="trajectories", disable=not progress)
    for r, (sched, n) in enumerate(c.runs):
        for s0 in range(0, c.crops, c.strip):
            hr = hr_all[s0 : s0 + c.strip]
            _, up = make_pair(hr, model.config.scale)
            k = hr.shape[0]
            cond = torch.cat(list(up), dim=-1)[None]  # (1, 3, h, k·w): the crops side by side
            o = (up + 1) / 2
            hr01 = (hr + 1) / 2
            # f_0 = up(LR), the estimate before any step (a residual model's x̂0 = 0): the first step's gain is
            # measured from it, as DynamicStrides does at inference
            rep0 = representation(o, o, gain_in, nr=bool(g.nr))
            last: dict[str, Any] = {"f": o, "fr_in": rep0.fr, "fr_hr": representation(o, hr01, gain_hr, nr=False).fr,
                                    "nr": rep0.nr}
            for state in iterate_tiles(model, cond, policy=UniformDDIM(n, sched), tile=c.crop, overlap=0,
                                       seed=c.seed + s0 + 1000 * r, precision=c.precision):
                t_step = int(state.steps[0]["t"])
                x0 = torch.stack([ts.x0 for ts in state.tiles]).float()
                f = ((model.output(x0, up) + 1) / 2).clamp(0, 1)
                nr_on = g.nr_active(t_step)
                rep_in = representation(f, o, gain_in, nr=bool(g.nr))  # R^NR at every step, I^NR counted if nr_on
                rep_hr = representation(f, hr01, gain_hr, nr=False)
                cur = {"f": f, "fr_in": rep_in.fr, "fr_hr": rep_hr.fr, "nr": rep_in.nr}
                if last:
                    both_nr = nr_on and cur["nr"] is not None and last["nr"] is not None
                    rows["f"].append(_u8(f))
                    rows["prev"].append(_u8(last["f"]))
                    rows["o"].append(_u8(o))
                    rows["t"].append(torch.full((k,), t_step))
                    rows["crop"].append(torch.arange(s0, s0 + k))
                    rows["run"].append(torch.full((k,), r))
                    rows["fr_hr"].append(information_gain(cur["fr_hr"], last["fr_hr"]))
                    rows["fr_input"].append(information_gain(cur["fr_in"], last["fr_in"]))
                    rows["nr"].append(information_gain(cur["nr"], last["nr"]) if both_nr
                                      else torch.zeros(k, dtype=torch.float64))
                    rows["nr_on"].append(torch.full((k,), both_nr))
                last = cur
            bar.update(1)
    bar.close()
    cat = {k: torch.cat(v) for k, v in rows.items()}
    return GainData(cat["f"], cat["prev"], cat["o"], cat["t"], cat["crop"], cat["run"],
                    {"fr_hr": cat["fr_hr"], "fr_input": cat["fr_input"], "nr": cat["nr"]}, cat["nr_on"])


# -- training ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MMLETrainConfig:
    steps: int = 3000
    batch: int = 32
    lr: float = 2e-3
    val_fraction: float = 0.2
    seed: int = 0


def class_agreement(fr_a: np.ndarray, nr_a: np.ndarray, fr_b: np.ndarray, nr_b: np.ndarray, tau: float) -> float:
    """Share of steps on which two gain signals give the same DTSS class (growing / stable / saturated)."""
    from .dtss import classify

    ca = [classify(x, y, tau)[0] for x, y in zip(fr_a, nr_a)]
    cb = [classify(x, y, tau)[0] for x, y in zip(fr_b, nr_b)]
    return float(np.mean([a == b for a, b in zip(ca, cb)])) if ca else float("nan")


def agreement(pred: np.ndarray, data: GainData, idx: torch.Tensor, tau: float) -> dict[str, Any]:
    """Spearman of the regressor's (I^FR, I^NR) with the oracle and with the computed (input-referenced) signals,
    and class agreement at τ, on rows ``idx`` of ``data`` (``pred`` (len(idx), 2))."""
    nr_on = data.nr_active[idx].numpy()  # type: ignore[index]
    fr_hr = data.gains["fr_hr"][idx].numpy()
    fr_in = data.gains["fr_input"][idx].numpy()
    nr = data.gains["nr"][idx].numpy()
    p_nr = np.where(nr_on, pred[:, 1], 0.0)
    return {
        "spearman_fr_vs_oracle": spearman(pred[:, 0], fr_hr),
        "spearman_fr_vs_computed": spearman(pred[:, 0], fr_in),
        "spearman_nr_vs_computed": spearman(pred[nr_on, 1], nr[nr_on]) if nr_on.any() else float("nan"),
        "spearman_computed_fr_vs_oracle": spearman(fr_in, fr_hr),
        "class_agreement_vs_oracle": class_agreement(pred[:, 0], p_nr, fr_hr, nr, tau),
        "class_agreement_vs_computed": class_agreement(pred[:, 0], p_nr, fr_in, nr, tau),
        "class_agreement_computed_vs_oracle": class_agreement(fr_in, nr, fr_hr, nr, tau),
        "rows": int(len(idx)), "nr_rows": int(nr_on.sum()),
    }


def train_mmle(data: GainData, config: MMLETrainConfig | None = None, net_config: MMLEConfig | None = None,
               tau: float = 5e-3, progress: bool = True) -> tuple[MMLERegressor, dict]:
    """Fit an :class:`MMLERegressor` on ``data`` (split by crop: the last ``val_fraction`` of the crops validate)
    with L2 on the scaled gains; return it and a report (losses, agreement on the validation crops)."""
    c = config or MMLETrainConfig()
    crops = data.crop.unique()
    n_val = max(1, int(round(c.val_fraction * len(crops))))
    val_crops = crops[-n_val:]
    is_val = torch.isin(data.crop, val_crops)
    tr, va = torch.nonzero(~is_val).flatten(), torch.nonzero(is_val).flatten()
    y = torch.stack([data.gains["fr_hr"], data.gains["nr"]], dim=1).float()
    mask = torch.stack([torch.ones(len(data), dtype=torch.bool), data.nr_active], dim=1)  # type: ignore[list-item]
    scale = tuple(float(y[tr][mask[tr][:, j], j].std().clamp_min(1e-4)) for j in range(2))
    nc = MMLEConfig(**{**(net_config or MMLEConfig()).to_dict(), "target_scale": scale})
    torch.manual_seed(c.seed)
    net = MMLERegressor(nc)
    g = torch.Generator().manual_seed(c.seed)
    opt = torch.optim.AdamW(net.parameters(), lr=c.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c.lr, total_steps=c.steps, pct_start=0.1)
    sc = torch.tensor(scale)
    losses = []
    net.train()
    for step in tqdm(range(c.steps), desc="fit", disable=not progress):
        idx = tr[torch.randint(0, len(tr), (c.batch,), generator=g)]
        f, prev, o = data.images(idx)
        if step % 2:
            f, prev, o = f.flip(-1), prev.flip(-1), o.flip(-1)
        out = net(MMLERegressor.features(f, prev, o, data.t[idx]))
        err = (out - y[idx] / sc) ** 2 * mask[idx]
        loss = err.sum() / mask[idx].sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    net.eval()
    preds = []
    with torch.no_grad():
        for k in range(0, len(va), 128):
            idx = va[k : k + 128]
            f, prev, o = data.images(idx)
            preds.append(net.predict(f, prev, o, data.t[idx]))
    pred = torch.cat(preds).numpy() if preds else np.zeros((0, 2))
    report = {"train_loss_last100": float(np.mean(losses[-100:])), "train_rows": int(len(tr)),
              "val_rows": int(len(va)), "val_crops": int(n_val), "target_scale": list(scale),
              "validation": agreement(pred, data, va, tau), "config": asdict(c), "net_config": nc.to_dict()}
    return net, report


def load_mmle_regressor(name: str = "mmle_regressor") -> MMLERegressor:
    """The shipped, trained regressor (hash-verified), in eval mode."""
    from ..registry import load_state_dict, model_config

    cfg = dict(model_config(name))
    cfg["target_scale"] = tuple(cfg["target_scale"])
    net = MMLERegressor(MMLEConfig(**cfg))
    net.load_state_dict(load_state_dict(name))
    return net.eval()


__all__ = ["GainData", "GainDataConfig", "MMLEConfig", "MMLERegressor", "MMLETrainConfig", "agreement",
           "class_agreement", "collect_gain_data", "load_mmle_regressor", "macs_per_call", "train_mmle"]

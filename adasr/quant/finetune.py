"""AdaBM fine-tuning: the float model is the teacher, only LR images are used (no HR).

    L = L_pix + λ_skt·L_skt + λ_bit·L_bit,   λ_skt = 10, λ_bit = 50
    L_pix = ‖SR_q − SR_fp‖₁ (mean)
    L_skt = 1/(B·K) Σ_b Σ_k ‖ f_k/‖f_k‖₂ − f_k^fp/‖f_k^fp‖₂ ‖₂      f_k: output of residual block k, per image
    L_bit = max(FAB − b_base, 0)                                      (only in the "measure" phase)

Phases cycle w → a → measure (AdaBM: one parameter group per epoch, 10 epochs, Adam, StepLR γ = 0.9 per epoch;
here each group's learning rate decays by γ after each epoch it trained in; default 6 epochs × 40 steps of 4 LR
patches, about a minute on two cores for the shipped EDSR):

* ``w``: weight bounds u_w (lr 0.01, AdaBM) and — an addition of this package, ``lr_weights`` (0 turns it off) — the
  convolution weights and biases of the quantized layers at a small learning rate;
* ``a``: activation bounds l_a, u_a (lr 0.01);
* ``measure``: I2B thresholds l, u (lr 0.1) and the layer measures b_L (lr 0.01), with L_bit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .adabm import AdaBM

PHASES = ("w", "a", "measure")


@dataclass(frozen=True)
class FinetuneConfig:
    """Budget and weights of the fine-tuning (AdaBM's defaults where they exist)."""

    epochs: int = 6
    steps_per_epoch: int = 40
    batch_size: int = 4
    lr_bounds_w: float = 0.01
    lr_weights: float = 1e-4
    lr_bounds_a: float = 0.01
    lr_measure_img: float = 0.1
    lr_measure_layer: float = 0.01
    gamma: float = 0.9
    lambda_skt: float = 10.0
    lambda_bit: float = 50.0
    feature_layers: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.steps_per_epoch < 1 or self.batch_size < 1:
            raise ValueError("epochs, steps_per_epoch and batch_size must be ≥ 1")


def skt_loss(feats: list[torch.Tensor], feats_fp: list[torch.Tensor]) -> torch.Tensor:
    """L_skt: mean over images and layers of ‖f/‖f‖₂ − f_fp/‖f_fp‖₂‖₂ (each f flattened per image)."""
    if len(feats) != len(feats_fp) or not feats:
        raise ValueError("need the same, non-zero number of student and teacher features")
    terms = []
    for f, g in zip(feats, feats_fp):
        f, g = f.flatten(1), g.flatten(1)
        terms.append((F.normalize(f, dim=1) - F.normalize(g, dim=1)).norm(dim=1))
    return torch.stack(terms).mean()


def bit_loss(fab: torch.Tensor, b_base: float) -> torch.Tensor:
    """L_bit = max(mean FAB − b_base, 0)."""
    return (fab.mean() - b_base).clamp_min(0)


def _param_groups(qm: AdaBM, cfg: FinetuneConfig) -> dict[str, list[dict]]:
    layers = qm.qlayers()
    w = [{"params": [q.upper_w for q in layers], "lr": cfg.lr_bounds_w}]
    if cfg.lr_weights > 0:
        w.append({"params": [p for q in layers for p in (q.weight, q.bias) if p is not None], "lr": cfg.lr_weights})
    a = [{"params": [p for q in layers for p in (q.lower_a, q.upper_a)], "lr": cfg.lr_bounds_a}]
    m: list[dict] = []
    if qm.config.image_to_bit:
        m.append({"params": [qm.i2b.lower, qm.i2b.upper], "lr": cfg.lr_measure_img})
    if qm.config.layer_to_bit:
        m.append({"params": [q.layer_measure for q in layers], "lr": cfg.lr_measure_layer})
    return {"w": w, "a": a, "measure": m}


class _Features:
    """Forward hooks that collect the outputs of named modules during one forward."""

    def __init__(self, model: nn.Module, names: tuple[str, ...]) -> None:
        self.out: list[torch.Tensor] = []
        self.hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o: self.out.append(o)) for n in names]

    def take(self) -> list[torch.Tensor]:
        out, self.out = self.out, []
        return out

    def close(self) -> None:
        for h in self.hooks:
            h.remove()


def default_feature_layers(model: nn.Module) -> tuple[str, ...]:
    """EDSR's residual blocks ``body.0 … body.{n−1}`` (the features L_skt compares)."""
    body = getattr(model, "body", None)
    if not isinstance(body, nn.Sequential):
        raise ValueError("no feature_layers given and the model has no 'body' Sequential")
    return tuple(f"body.{i}" for i in range(len(body)))


def _objective(qm: AdaBM, teacher: nn.Module, x: torch.Tensor, fs: _Features, ft: _Features) -> dict:
    with torch.no_grad():
        target = teacher(x)
        feats_fp = ft.take()
    out = qm(x)
    feats = fs.take()
    fab = qm.fab_per_image()
    return {"pix": F.l1_loss(out, target), "skt": skt_loss(feats, feats_fp), "bit": bit_loss(fab, qm.config.a_bits),
            "fab": fab}


@torch.no_grad()
def objective(qm: AdaBM, teacher: nn.Module, x: torch.Tensor, feature_layers: tuple[str, ...] = ()) -> dict:
    """The fine-tuning loss terms on LR images x (B, 3, h, w): {"pix", "skt", "bit", "fab"} as floats."""
    names = feature_layers or default_feature_layers(teacher)
    fs, ft = _Features(qm.model, names), _Features(teacher, names)
    try:
        terms = _objective(qm, teacher, x, fs, ft)
    finally:
        fs.close()
        ft.close()
    return {k: float(v.mean()) for k, v in terms.items()}


def finetune(
    qm: AdaBM, teacher: nn.Module, lr_images: torch.Tensor, cfg: FinetuneConfig | None = None, progress: bool = True,
) -> dict:
    """Fine-tune a calibrated :class:`AdaBM` model in place against ``teacher`` on LR images (N, 3, h, w).

    Returns a log: ``loss`` per step, ``phase`` per epoch, ``fab`` (mean over the steps) per epoch that trained
    (a phase with no parameters, e.g. "measure" of a fixed-bit model, is listed in ``phase`` but skipped), ``seconds``.
    Results depend on the torch thread count (reduction order in the backward pass)."""
    from tqdm.auto import tqdm

    cfg = cfg or FinetuneConfig()
    if qm.mode != "quant":
        raise RuntimeError("calibrate the model first (AdaBM.calibrate)")
    names = cfg.feature_layers or default_feature_layers(teacher)
    teacher.eval()
    fs, ft = _Features(qm.model, names), _Features(teacher, names)
    groups = _param_groups(qm, cfg)
    opts = {k: torch.optim.Adam(v) for k, v in groups.items() if v}
    scheds = {k: torch.optim.lr_scheduler.StepLR(o, 1, cfg.gamma) for k, o in opts.items()}
    for p in qm.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(cfg.seed)
    log: dict = {"loss": [], "phase": [], "fab": []}
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.epochs * cfg.steps_per_epoch, disable=not progress, desc="AdaBM fine-tune", unit="step")
    try:
        for epoch in range(cfg.epochs):
            phase = PHASES[epoch % len(PHASES)]
            log["phase"].append(phase)
            if phase not in opts:
                bar.update(cfg.steps_per_epoch)
                continue
            params = [p for g in groups[phase] for p in g["params"]]
            for p in params:
                p.requires_grad_(True)
            fabs = []
            for _ in range(cfg.steps_per_epoch):
                idx = torch.randint(0, lr_images.shape[0], (cfg.batch_size,), generator=gen)
                x = lr_images[idx]
                terms = _objective(qm, teacher, x, fs, ft)
                fab = terms["fab"]
                loss = terms["pix"] + cfg.lambda_skt * terms["skt"]
                if phase == "measure":
                    loss = loss + cfg.lambda_bit * terms["bit"]
                opts[phase].zero_grad(set_to_none=True)
                loss.backward()
                opts[phase].step()
                log["loss"].append(float(loss.detach()))
                fabs.append(float(fab.detach().mean()))
                bar.update(1)
                bar.set_postfix(phase=phase, loss=f"{log['loss'][-1]:.4f}", fab=f"{fabs[-1]:.2f}")
            for p in params:
                p.requires_grad_(False)
            with torch.no_grad():
                for q in qm.qlayers():  # keep the activation bounds ordered
                    if q.upper_a <= q.lower_a:
                        q.upper_a.fill_(q.lower_a.item() + 1e-3)
            scheds[phase].step()
            log["fab"].append(sum(fabs) / len(fabs))
    finally:
        fs.close()
        ft.close()
        bar.close()
    log["seconds"] = time.perf_counter() - t0
    return log

"""Train the learned complexity estimator on the shipped diffusion model's one-step errors and register it.

    python tools/train_complexity_net.py            # ~3 CPU minutes, writes adasr/weights/complexity_net.safetensors

See :mod:`adasr.adaptive.learned` for the target and the network. The validation rank correlations (per 128×128
training-image crop, held out from the fit) of the net's and of the plain gradient's C_p with the true one-step
error are printed and stored in the registry entry.
"""

from __future__ import annotations

import argparse
import json
import platform

import torch

from adasr.adaptive.learned import ComplexityTrainConfig, train_complexity_net
from adasr.registry import register
from adasr.runtime import seed_everything
from adasr.upscaling import load_pretrained


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", default="complexity_net")
    p.add_argument("--steps", type=int, default=ComplexityTrainConfig.steps)
    p.add_argument("--crops", type=int, default=ComplexityTrainConfig.crops)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    seed_everything(a.seed)
    model = load_pretrained()
    cfg = ComplexityTrainConfig(steps=a.steps, crops=a.crops, seed=a.seed)
    net, report = train_complexity_net(model, cfg)
    print(json.dumps({k: v for k, v in report.items() if "config" not in k}, indent=2))
    command = f"python tools/train_complexity_net.py --steps {a.steps} --crops {a.crops} --seed {a.seed}"
    register(a.name, net.state_dict(), config=net.config.to_dict(), dtype=torch.float32, command=command,
             description="learned patch-complexity estimator: predicts the local error left after one DDIM step of "
             "sr_x4 (adasr.adaptive.learned)", trained_on="random 128×128 crops of adasr.data.TRAIN_IMAGES",
             training=report, torch=torch.__version__, machine=platform.machine())


if __name__ == "__main__":
    main()

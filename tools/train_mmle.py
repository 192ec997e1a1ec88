"""Build the MMLE regressor's data (trajectories of the shipped model on training-photo crops, every step scored
with the information-gain metrics) and train the shipped regressor (``mmle_regressor``).

    python tools/train_mmle.py                       # data ~10 CPU minutes, fit a few minutes
    python tools/train_mmle.py --data runs/mmle/data.pt --no-register   # refit on cached data

See :mod:`adasr.adaptive.mmle`. The data is cached in ``--data`` (not shipped); the report (validation agreement
with the oracle and with the computed metrics, on crops held out from the fit) is printed and stored in the
registry entry.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

from adasr.adaptive.mmle import GainData, GainDataConfig, MMLETrainConfig, collect_gain_data, train_mmle
from adasr.registry import register
from adasr.runtime import seed_everything
from adasr.upscaling import load_pretrained


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", default="mmle_regressor")
    p.add_argument("--data", default="runs/mmle/data.pt", help="cache of the scored trajectories")
    p.add_argument("--crops", type=int, default=GainDataConfig.crops)
    p.add_argument("--steps", type=int, default=MMLETrainConfig.steps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-register", action="store_true")
    a = p.parse_args()
    seed_everything(a.seed)
    path = Path(a.data)
    start = time.perf_counter()
    dcfg = GainDataConfig(crops=a.crops, seed=a.seed)
    if path.exists():
        blob = torch.load(path, weights_only=True)
        data = GainData(**{k: v for k, v in blob.items() if k != "config"})
        print(f"loaded {len(data)} rows from {path}")
    else:
        model = load_pretrained()
        data = collect_gain_data(model, dcfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({**{f.name: getattr(data, f.name) for f in dataclasses.fields(data)},
                    "config": json.dumps(dataclasses.asdict(dcfg))}, path)
        print(f"scored {len(data)} rows in {time.perf_counter() - start:.0f} s -> {path}")
    data_seconds = time.perf_counter() - start
    net, report = train_mmle(data, MMLETrainConfig(steps=a.steps, seed=a.seed))
    report["data"] = dataclasses.asdict(dcfg)
    report["data_seconds"] = round(data_seconds, 1)
    report["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps({k: v for k, v in report.items() if "config" not in k}, indent=2))
    if a.no_register:
        return
    command = f"python tools/train_mmle.py --crops {a.crops} --steps {a.steps} --seed {a.seed}"
    register(a.name, net.state_dict(), config=net.config.to_dict(), dtype=torch.float32, command=command,
             description="MMLE regressor of AdaDiffSR: predicts a tile's information gain (I^FR against the HR, "
             "I^NR) from its state (adasr.adaptive.mmle)",
             trained_on="trajectories of sr_x4 on random 128×128 crops of adasr.data.TRAIN_IMAGES",
             training=report, torch=torch.__version__, machine=platform.machine())


if __name__ == "__main__":
    main()

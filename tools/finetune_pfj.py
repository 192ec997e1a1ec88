"""Fine-tune the shipped sr_x4 with PFJ and, as the control, with plain concatenation; then evaluate both.

Both arms see the same data stream (same generator seed: the same crops, t, ε and Δ at every step; the report
checks the chained sha256 of the stream), the same number of steps, batch and crops (``adasr train``'s: 16 × 64²),
the paper's Adam at 5·10⁻⁵ for the UNet (φ, new, at 10⁻³). See :mod:`adasr.adaptive.pfj`.

    OMP_NUM_THREADS=1 ADASR_THREADS=1 python tools/finetune_pfj.py --measure 6         # s/step of each arm
    OMP_NUM_THREADS=1 ADASR_THREADS=1 python tools/finetune_pfj.py --steps 250          # both arms (resumable)
    OMP_NUM_THREADS=1 ADASR_THREADS=1 python tools/finetune_pfj.py --steps 250 --evaluate

Writes ``runs/pfj/<arm>/`` (checkpoint.pt, log.jsonl, ema.safetensors, config.json), ``runs/pfj/report.json``
(both arms' reports) and, with ``--evaluate``, ``runs/pfj/eval.json`` and ``runs/pfj/eval.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from adasr.adaptive.pfj import (
    ARMS, PFJConfig, PFJFinetuneConfig, evaluate_pfj, finetune, format_table, load_finetuned,
)


def _regressor(random: bool):
    from adasr.adaptive.mmle import MMLERegressor, load_mmle_regressor

    if random:
        torch.manual_seed(0)
        return MMLERegressor().eval()
    return load_mmle_regressor()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    d = PFJFinetuneConfig()
    p.add_argument("--out", default="runs/pfj")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--pfj-lr", type=float, default=d.pfj_lr)
    p.add_argument("--freeze-unet", action="store_true", help="PFJ arm: train φ only")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=d.precision)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--max-seconds", type=float, default=None, help="per arm: stop (and checkpoint) after this")
    p.add_argument("--measure", type=int, default=0, help="only time this many steps of each arm (no run folder)")
    p.add_argument("--random-regressor", action="store_true", help="development only: an untrained MMLE regressor")
    p.add_argument("--evaluate", action="store_true", help="after training, evaluate shipped, pfj and concat")
    p.add_argument("--eval-only", action="store_true", help="evaluate the finished runs in --out, train nothing")
    p.add_argument("--eval-steps", type=int, default=10)
    p.add_argument("--eval-precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--samplers", nargs="+", default=["uniform", "dtss", "dtss-i0"])
    p.add_argument("--progress", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("ADASR_THREADS", torch.get_num_threads())))

    from adasr.upscaling import load_pretrained

    base = load_pretrained(device="cpu")
    out = Path(a.out)
    reg = _regressor(a.random_regressor) if not a.eval_only else None
    # φ sees each gain divided by its typical size: the regressor's target scale (its outputs' training std)
    gain_scale = tuple(round(1.0 / s, 4) for s in reg.config.target_scale) if reg is not None else (100.0, 100.0)
    cfg = PFJFinetuneConfig(steps=a.steps, batch_size=a.batch_size, lr=a.lr, pfj_lr=a.pfj_lr,
                            freeze_unet=a.freeze_unet, precision=a.precision, seed=a.seed,
                            pfj=PFJConfig(gain_scale=gain_scale))
    if a.measure:
        res = {}
        for arm in a.arms:
            c = PFJFinetuneConfig(**{**cfg.__dict__, "steps": a.measure + 1})
            with tempfile.TemporaryDirectory() as tmp:
                finetune(base, arm, PFJFinetuneConfig(**{**c.__dict__, "steps": 1}), regressor=reg)  # warm-up
                _, rep = finetune(base, arm, PFJFinetuneConfig(**{**c.__dict__, "steps": a.measure}), regressor=reg,
                                  out=tmp)
            res[arm] = rep["seconds_per_step"]
            print(f"{arm}: {rep['seconds_per_step']:.2f} s/step ({rep['precision']}, {rep['threads']} thread(s))")
        out.mkdir(parents=True, exist_ok=True)
        (out / "measure.json").write_text(json.dumps({"seconds_per_step": res, "steps_timed": a.measure,
                                                      "config": cfg.to_dict()}, indent=2))
        return 0

    if not a.eval_only:
        report_path = out / "report.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else {"arms": {}}
        for arm in a.arms:
            t0 = time.perf_counter()
            _, rep = finetune(base, arm, cfg, out=out / arm, regressor=reg, progress=a.progress,
                              max_seconds=a.max_seconds)
            rep["wall_seconds_this_run"] = time.perf_counter() - t0
            prev = report["arms"].get(arm, {})
            rep["sessions"] = prev.get("sessions", []) + [
                {"steps_this_run": rep["steps_this_run"], "seconds": rep["seconds"],
                 "seconds_per_step": rep["seconds_per_step"], "resumed_from": rep["resumed_from"]}]
            rep["regressor"] = "random (development)" if a.random_regressor else "shipped mmle_regressor"
            report["arms"][arm] = rep
            print(f"{arm}: step {rep['steps']}/{cfg.steps}, {rep['seconds_per_step'] or 0:.2f} s/step, "
                  f"loss first10 {rep['loss_first10']}, last50 {rep['loss_last50']}")
        streams = {arm: r["data_stream_sha256"] for arm, r in report["arms"].items()}
        steps = {arm: r["steps"] for arm, r in report["arms"].items()}
        report["same_data_stream"] = len(set(streams.values())) == 1 and len(set(steps.values())) == 1
        report["machine"] = f"{platform.machine()} {platform.processor()}".strip()
        report["torch"] = torch.__version__
        report["command"] = "python tools/finetune_pfj.py " + " ".join(argv if argv is not None else sys.argv[1:])
        out.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report, indent=2))
        print(f"same data stream in both arms: {report['same_data_stream']}")
        if not all(r["finished"] for r in report["arms"].values()):
            print("not finished: run again to resume")
            return 0

    if a.evaluate or a.eval_only:
        models = {"shipped": base}
        for arm in ARMS:
            if (out / arm / "ema.safetensors").exists():
                models[arm] = load_finetuned(out / arm)
        t0 = time.perf_counter()
        res = evaluate_pfj(models, steps=a.eval_steps, precision=a.eval_precision, samplers=a.samplers,
                           progress=a.progress, log=print)
        res["seconds"] = time.perf_counter() - t0
        (out / "eval.json").write_text(json.dumps(res, indent=2))
        table = format_table(res)
        (out / "eval.txt").write_text(table + "\n")
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""adasr.viz.common: the one metric line of panel titles (exact strings) and the tick remover."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from adasr.viz.common import METRIC_FORMATS, metric_line, no_ticks


def teardown_function(_):
    plt.close("all")


def test_metric_line_default_keys_and_order():
    m = {"lpips": 0.33349, "ssim_y": 0.81249, "psnr_y": 25.104, "steps": 6.25}  # order of m does not matter
    assert metric_line(m) == "25.10 dB · SSIM 0.812 · LPIPS 0.333"  # steps are not among the default keys
    assert metric_line({"psnr_y": np.float32(31.2349), "lpips": torch.tensor(0.2104).item()}) == "31.23 dB · LPIPS 0.210"
    assert metric_line({"lpips": 0.2}) == "LPIPS 0.200"
    assert metric_line(None) == metric_line({}) == metric_line({"other": 1.0}) == ""


def test_metric_line_with_chosen_keys():
    m = {"steps": 6.25, "psnr_y": 25.1, "ssim_y": 0.9, "lpips": 0.21}
    assert metric_line(m, ("steps", "psnr_y", "lpips")) == "6.2 steps/tile · 25.10 dB · LPIPS 0.210"
    assert metric_line(m, ("lpips", "steps")) == "LPIPS 0.210 · 6.2 steps/tile"
    assert set(METRIC_FORMATS) == {"steps", "psnr_y", "ssim_y", "lpips"}
    with pytest.raises(KeyError):
        metric_line({"nfe": 3}, ("nfe",))


def test_no_ticks():
    fig, ax = plt.subplots()
    ax.imshow(np.zeros((4, 4)))
    no_ticks(ax)
    assert len(ax.get_xticks()) == 0 and len(ax.get_yticks()) == 0 and ax.axison

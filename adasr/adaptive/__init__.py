"""Adaptive inference for diffusion SR: patch complexity, per-tile step allocation, Δx̂0 early exit (AdaSR)."""

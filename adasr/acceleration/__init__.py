"""Acceleration without changing the schedule: feature reuse across steps (encoder reuse, DeepCache) and sparse
momentum training (SMFDM)."""

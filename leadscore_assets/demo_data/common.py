"""Helpers shared by the demo generators."""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def hex_ids(n: int, seed: int, width: int) -> np.ndarray:
    """Unique, random-looking hex ids: a chain of bijections on [0, 16**width) applied to 0..n-1."""
    bits = 4 * width
    mask = np.uint64((1 << bits) - 1)
    x = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed * 7919 + 1)) & mask
    x ^= x >> np.uint64(bits // 2)
    x = (x * np.uint64(0xBF58476D1CE4E5B9)) & mask
    x ^= x >> np.uint64(bits // 3)
    return np.char.mod(f"%0{width}x", x.astype(np.int64))

"""Exports scikit-learn's handwritten digits (1797 8x8 images, shipped inside the
scikit-learn package) for `examples/digits.rs`: digits.npz with `images` (uint8, 1797x64,
values 0..16) and `labels` (uint8). The output is committed, so the example needs no Python.

Run: python3 -m pip install scikit-learn && python3 examples/data/export_digits.py"""
import os

import numpy as np
from sklearn.datasets import load_digits

d = load_digits()
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.npz")
np.savez_compressed(out, images=d.data.astype(np.uint8), labels=d.target.astype(np.uint8))
print(f"{out}: {d.data.shape[0]} images")

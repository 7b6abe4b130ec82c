"""Cases that check the harness itself: `contiguous` returns its input's values, for every
dtype and layout, including empty and 0-d arrays."""
import numpy as np
from common import Cases, rand, DTYPES

rng = np.random.default_rng(0)
c = Cases()
for name in DTYPES:
    for shape in [(), (5,), (2, 3), (2, 3, 4), (0, 3)]:
        x = rand(shape, name, rng)
        c.add("contiguous", [x], x)
c.save(__file__)

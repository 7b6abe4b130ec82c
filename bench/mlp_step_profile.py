"""The kernels of torch.compile's MLP training step (bench/peers_gpu.py's recipe), by GPU time.

    python3 bench/mlp_step_profile.py [STEPS] [--plain]

Beside `gpu --mlp-only --profile` (umx's step by primitive), to see where the two steps
differ. Prints microseconds per step for each kernel name (the torch profiler's CUDA time),
longest first, and the total. With `--plain` the steps run without the profiler (for `ncu`,
which cannot share the card's profiling interface with it).
"""

import os
import sys
from collections import defaultdict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers_gpu import torch_compiled_step  # noqa: E402  (the peer's own recipe)


def main():
    args = [a for a in sys.argv[1:] if a != "--plain"]
    steps = int(args[0]) if args else 5
    torch.manual_seed(0)
    xb = torch.randn(1024, 4096, device="cuda")
    yb = torch.randint(0, 10, (1024,), device="cuda")
    step = torch_compiled_step(xb, yb)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    if "--plain" in sys.argv:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        return
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    by = defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            t = by[e.name]
            t[0] += 1
            t[1] += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
    total = 0.0
    print(f"torch.compile MLP step, kernels by GPU time (us per step, over {steps} steps):")
    for name, (n, us) in sorted(by.items(), key=lambda kv: -kv[1][1]):
        total += us / steps
        print(f"{us / steps:9.1f} {n // steps:3d}  {name[:110]}")
    print(f"{total:9.1f}      total")


if __name__ == "__main__":
    main()

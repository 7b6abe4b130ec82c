#!/usr/bin/env bash
# Runs every generated CUDA kernel of the quantized family (dequantize, the matrix-vector
# product) on the CPU, where there is no GPU or NVRTC: the kernels' sources are dumped by a
# unit test, compiled by g++ with a small stand-in for CUDA (scripts/cuda-emulation/stub.h:
# one thread per lane, shuffles through a barrier) and checked against a float64 reference.
# It checks the kernels' arithmetic and indexing, not NVRTC nor the GPU's memory rules.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
UMX_DUMP_QUANTIZED_SOURCES="$dir" cargo test -q -p umx-cuda --lib generated_sources >/dev/null
pass=0; fail=0
for f in "$dir"/*.cu; do
    case $f in *Float32*) dt=0 ;; *Float16*) dt=1 ;; *) dt=2 ;; esac
    # x86 has no PTX: float16 conversions through _Float16 instead of the header's asm.
    sed -e 's|^UMX_FN float umx_h2f.*|UMX_FN float umx_h2f(unsigned short h) { _Float16 f; std::memcpy(\&f, \&h, 2); return (float)f; }|' \
        -e 's|^UMX_FN unsigned short umx_f2h.*|UMX_FN unsigned short umx_f2h(float f) { _Float16 h = (_Float16)f; unsigned short u; std::memcpy(\&u, \&h, 2); return u; }|' \
        "$f" >"$dir/k.cu"
    g++ -std=c++20 -O1 -w -pthread -include scripts/cuda-emulation/stub.h \
        -DKERNEL="\"$dir/k.cu\"" -DDT=$dt scripts/cuda-emulation/quantized_harness.cpp -o "$dir/h"
    if "$dir/h" >/dev/null; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $(basename "$f")"; fi
done
rm -rf "$dir"
echo "quantized kernels on the CPU: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

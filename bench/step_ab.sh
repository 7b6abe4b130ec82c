#!/usr/bin/env bash
# A/B of a decoding step on the GPU machine: each configuration's `llm --step` time, the
# configurations alternating, ROUNDS times, one line each at the end (machines differ by a
# few percent between calls, so compare only within one run).
#
#   bench/step_ab.sh ROUNDS 'label|command' ...
#   bench/step_ab.sh 3 'main|gpu-q/llm-main --step' 'new|gpu-q/llm-new --step' \
#       'new, no PDL|UMX_NO_PDL=1 gpu-q/llm-new --step' '4-bit|gpu-q/llm-new --step --q4'
#
# A command's time (ms) is the last "decoding step: X ms" it prints (with --q4, the 4-bit
# step's).
set -uo pipefail
rounds=${1:?rounds}
shift
declare -a labels cmds times
for spec in "$@"; do
    labels+=("${spec%%|*}")
    cmds+=("${spec#*|}")
    times+=("")
done
for ((r = 0; r < rounds; r++)); do
    for i in "${!cmds[@]}"; do
        out=$(bash -c "${cmds[$i]}" 2>&1)
        t=$(grep -Eo 'decoding step: [0-9.]+ ms' <<<"$out" | tail -1 | grep -Eo '[0-9.]+' | head -1)
        times[$i]+=" ${t:-failed}"
    done
done
for i in "${!cmds[@]}"; do
    printf '%-32s%s\n' "${labels[$i]}" "${times[$i]}"
done

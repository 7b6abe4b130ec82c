#!/usr/bin/env bash
# The test suite on the GPU machine, which has no Rust toolchain.
#
#   scripts/gpu-tests.sh build [DEST]   here: builds the test binaries (release, no debug
#                                       info), strips them and collects them, the reference
#                                       data and this script in DEST (default gpu-bin/).
#   DEST/gpu-tests.sh run               there: runs every binary with the GPU as the default
#                                       device and prints passed/failed per binary
#                                       (GPU_TEST_THREADS tests at once, default 4; the
#                                       conformance binary compiles its kernels with NVRTC
#                                       on first use, each module under its own lock, so
#                                       more threads compile more kernels at once; 8 or 12
#                                       threads untried); GPU_TEST_ONLY="gpu graph"
#                                       runs only the binaries named (at build, only
#                                       those are collected; XZ_OPT="-6 -T2" packs faster).
#
# The tests find tests/reference through the path they were built at (CARGO_MANIFEST_DIR), so
# `run` links that path to the carried copy. DEST must be git-ignored (it is sent with `carry`).
set -uo pipefail

cmd=${1:-}
case "$cmd" in
build)
    dest=${2:-gpu-bin}
    root=$(cd "$(dirname "$0")/.." && pwd)
    cd "$root" || exit 1
    # The test crates: umx's integration tests (the op conformance suite), umx-cuda's, and
    # umx-lm's (generation through CUDA graphs against transformers' tokens).
    # The dev profile (dependencies at opt-level 3) reuses the build `cargo test` makes anyway;
    # GPU_TESTS_PROFILE=release builds optimised binaries instead. Debug info is stripped.
    profile=${GPU_TESTS_PROFILE:-dev}
    out=$(cargo test --profile "$profile" -p umx -p umx-cuda -p umx-lm --no-run \
        --message-format=json 2>/dev/null) || { echo "build failed"; exit 1; }
    rm -rf "$dest" && mkdir -p "$dest/bin"
    echo "$out" | python3 -c '
import json, sys
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' | while read -r exe; do
        name=$(basename "$exe" | sed 's/-[0-9a-f]*$//')
        # GPU_TEST_ONLY="gpu conformance": only those binaries travel (a smaller carry).
        if [ -n "${GPU_TEST_ONLY:-}" ] && [[ " $GPU_TEST_ONLY " != *" $name "* ]]; then
            continue
        fi
        # Library unit tests of several crates are all called after their crate: keep apart.
        cp "$exe" "$dest/bin/$name" && strip "$dest/bin/$name"
    done
    # Compressed: a dozen binaries that share most of their code shrink several times over.
    XZ_OPT=${XZ_OPT:-"-9 -T1"} tar cJf "$dest/bin.tar.xz" -C "$dest" bin && rm -rf "$dest/bin"
    cp -r tests/reference "$dest/reference"
    cp -r crates/umx-lm/tests/data "$dest/lm-data"
    cp "$0" "$dest/gpu-tests.sh"
    echo "$root" > "$dest/built-at"
    du -sh "$dest"
    ;;
run)
    here=$(cd "$(dirname "$0")" && pwd)
    built=$(cat "$here/built-at")
    [ -d "$here/bin" ] || tar xJf "$here/bin.tar.xz" -C "$here"
    # Tests open $built/crates/umx/../../tests/reference.
    mkdir -p "$built/crates/umx" && rm -rf "$built/tests" && mkdir -p "$built/tests" \
        && ln -s "$here/reference" "$built/tests/reference"
    # umx-lm's tests open $built/crates/umx-lm/tests/data.
    mkdir -p "$built/crates/umx-lm/tests" && rm -rf "$built/crates/umx-lm/tests/data" \
        && ln -s "$here/lm-data" "$built/crates/umx-lm/tests/data"
    export UMX_DEFAULT_DEVICE=gpu UMX_KERNEL_CACHE=${UMX_KERNEL_CACHE:-/tmp/umx-kernels}
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/card: /'
    date -u +"date: %Y-%m-%d %H:%M UTC"
    logs=/tmp/umx-test-logs; rm -rf "$logs"; mkdir -p "$logs"
    total_pass=0; total_fail=0; summary=""
    for t in "$here"/bin/*; do
        name=$(basename "$t")
        # GPU_TEST_ONLY="gpu graph": those binaries alone.
        if [ -n "${GPU_TEST_ONLY:-}" ] && [[ " $GPU_TEST_ONLY " != *" $name "* ]]; then
            continue
        fi
        log="$logs/$name.log"
        start=$(date +%s)
        # Each primitive and input dtypes that ran on the CPU fallback is logged once per
        # binary (UMX_LOG_FALLBACK); the distinct ones are listed at the end.
        (cd "$built/crates/umx" 2>/dev/null || cd "$here"
         UMX_LOG_FALLBACK="$logs/$name.fallback" timeout "${PER_BINARY_TIMEOUT:-500}" "$t" --test-threads="${GPU_TEST_THREADS:-4}") >"$log" 2>&1
        rc=$?
        pass=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
        fail=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
        total_pass=$((total_pass + pass)); total_fail=$((total_fail + fail))
        summary+=$(printf '%-28s %4d passed %4d failed  rc=%d  %ds' "$name" "$pass" "$fail" "$rc" $(( $(date +%s) - start )))$'\n'
        if [ "$fail" -gt 0 ] || [ "$rc" -ne 0 ]; then
            grep -E '^test .* FAILED|panicked at' "$log" | head -20 | sed "s/^/  [$name] /"
            grep -A12 -E '^---- ' "$log" | head -60 | sed "s/^/  [$name] /"
        fi
    done
    echo
    echo "== summary =="
    printf '%s' "$summary"
    echo "== CPU fallbacks (primitive (input dtypes)) =="
    cat "$logs"/*.fallback 2>/dev/null | sed 's/^umx: //; s/ ran on.*//' | sort -u \
        | tr '\n' ';' | sed 's/;/; /g'; echo
    echo "total: $total_pass passed, $total_fail failed"
    # One file back (the device tool returns at most 8).
    [ -n "${OUT:-}" ] && tar czf "$OUT/test-logs.tgz" -C "$logs" .
    ;;
*)
    echo "usage: $0 build [DEST] | run"; exit 2 ;;
esac

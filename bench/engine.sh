#!/usr/bin/env bash
# Prints the engine's figures: hashing pipeline throughput against raw crypto/sha256 on the
# same bytes (target >= 0.9), allocations per ignored event (target 0), heap growth while a
# 1 GiB object is judged (target < 16 MiB), and a cached release lookup.
set -euo pipefail
cd "$(dirname "$0")/.."
# -count runs each benchmark several times, interleaved; the median of each is compared.
out=$(go test -run '^$' -bench 'HashPipeline|RawSHA256|HandleIgnored|HashHugeObject' -benchtime "${BENCHTIME:-5x}" -count "${COUNT:-5}" ./internal/engine/)
rel=$(go test -run '^$' -bench 'ResolveCached' ./internal/release/)
echo "$out" | grep '^Benchmark'
echo "$rel" | grep '^Benchmark'
# metric NAME UNIT: the median of that benchmark's UNIT column (max for heap growth).
metric() {
  echo "$out" | awk -v b="^Benchmark$1-" -v u="$2" '$0 ~ b {for (i=1;i<NF;i++) if ($(i+1)==u) print $i}' |
    sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}
pipe=$(metric HashPipeline MB/s)
raw=$(metric RawSHA256 MB/s)
allocs=$(metric HandleIgnored allocs/op)
heap=$(echo "$out" | awk '/^BenchmarkHashHugeObject-/ {for (i=1;i<NF;i++) if ($(i+1)=="heap-growth-MiB") print $i}' | sort -g | tail -1)
echo
awk -v p="$pipe" -v r="$raw" 'BEGIN { printf "hash pipeline / raw sha256: %.3f (%s vs %s MB/s; target >= 0.9)\n", p/r, p, r }'
echo "allocations per ignored event: $allocs (target 0)"
echo "heap growth hashing 1 GiB: $heap MiB (target < 16)"

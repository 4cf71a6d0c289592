#!/usr/bin/env bash
# Prints the engine's figures:
#   - the judge's check (engine.CheckReader) against raw crypto/sha256 on the same bytes,
#     through a reader that behaves like an HTTP body (no WriteTo, 32 KiB per Read),
#     interleaved round by round (bench/hash; target >= 0.95);
#   - allocations per ignored event (target 0) and heap growth while a 1 GiB object is
#     judged (target < 16 MiB).
# The audit and restore figures come from bench/audit (go run ./bench/audit -h).
set -euo pipefail
cd "$(dirname "$0")/.."
go run ./bench/hash -rounds "${ROUNDS:-15}" | tail -1
out=$(go test -run '^$' -bench 'HandleIgnored|HashHugeObject' -benchtime "${BENCHTIME:-3x}" -count "${COUNT:-3}" ./internal/engine/)
echo "$out" | grep '^Benchmark'
allocs=$(echo "$out" | awk '/^BenchmarkHandleIgnored-/ {for (i=1;i<NF;i++) if ($(i+1)=="allocs/op") print $i}' | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
heap=$(echo "$out" | awk '/^BenchmarkHashHugeObject-/ {for (i=1;i<NF;i++) if ($(i+1)=="heap-growth-MiB") print $i}' | sort -g | tail -1)
echo "allocations per ignored event: $allocs (target 0)"
echo "heap growth hashing 1 GiB: $heap MiB (target < 16)"

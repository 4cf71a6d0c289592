package function

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeInstances stands in for framework instances: each is an httptest server running
// handle, and start counts the instances started.
type fakeInstances struct {
	t       *testing.T
	handle  http.HandlerFunc
	started atomic.Int32
}

func (f *fakeInstances) start() (*url.URL, error) {
	f.started.Add(1)
	srv := httptest.NewServer(f.handle)
	f.t.Cleanup(srv.Close)
	return url.Parse(srv.URL)
}

func setLimits(t *testing.T, inFlight int, handling time.Duration) {
	oldN, oldD := MaxEventsInFlight, HandlingLimit
	MaxEventsInFlight, HandlingLimit = inFlight, handling
	t.Cleanup(func() { MaxEventsInFlight, HandlingLimit = oldN, oldD })
}

func post(ctx context.Context, body string) *http.Request {
	return httptest.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewBufferString(body))
}

// The pool never has more than MaxEventsInFlight instances live: one more request waits
// until one is put back, or until its client goes away.
func TestPoolWaitsAtTheLimit(t *testing.T) {
	setLimits(t, 2, HandlingLimit)
	synctest.Test(t, func(t *testing.T) {
		n := 0
		p := newPool()
		p.start = func() (*url.URL, error) { n++; return &url.URL{Host: fmt.Sprint("instance-", n)}, nil }
		a, err := p.get(t.Context())
		require.NoError(t, err)
		b, err := p.get(t.Context())
		require.NoError(t, err)
		assert.NotEqual(t, a, b)

		got := make(chan *url.URL, 1)
		go func() {
			u, err := p.get(t.Context())
			assert.NoError(t, err)
			got <- u
		}()
		synctest.Wait()
		assert.Empty(t, got, "a third request got an instance while two were busy")
		p.put(a)
		synctest.Wait()
		assert.Equal(t, a, <-got, "the idle instance is reused")
		assert.Equal(t, 2, n)

		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { _, err := p.get(ctx); errc <- err }()
		synctest.Wait()
		cancel()
		assert.ErrorIs(t, <-errc, context.Canceled)

		// A retired instance frees its place: the next request starts a new one.
		p.drop()
		c, err := p.get(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "instance-3", c.Host)
	})
}

// A framework instance that does not answer within HandlingLimit may still be running the
// event: it is never given another request, whether its client waited or went away.
func TestFrontRetiresAnInstanceThatDidNotAnswer(t *testing.T) {
	for _, clientLeaves := range []bool{false, true} {
		t.Run(fmt.Sprint("client leaves: ", clientLeaves), func(t *testing.T) { testRetire(t, clientLeaves) })
	}
}

func testRetire(t *testing.T, clientLeaves bool) {
	setLimits(t, 10, 200*time.Millisecond)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	var calls atomic.Int32
	f := &fakeInstances{t: t, handle: func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			<-release // the first event hangs
		}
		io.WriteString(w, "judged")
	}}
	p := newPool()
	p.start = f.start
	front := newFront(p, slog.New(slog.DiscardHandler))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		<-entered
		if clientLeaves {
			cancel()
		}
	}()
	rec := httptest.NewRecorder()
	front.ServeHTTP(rec, post(ctx, "{}"))
	assert.Equal(t, http.StatusBadGateway, rec.Code)

	rec = httptest.NewRecorder()
	front.ServeHTTP(rec, post(t.Context(), "{}"))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "judged", rec.Body.String())
	assert.Equal(t, int32(2), f.started.Load(), "the hanging instance was given the second request")
	rec = httptest.NewRecorder()
	front.ServeHTTP(rec, post(t.Context(), "{}"))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, int32(2), f.started.Load(), "a healthy instance is reused")
}

// A client that goes away stops nothing it already passed on; one that goes away while it
// waits for an instance is never passed on.
func TestFrontAndClientsThatGoAway(t *testing.T) {
	setLimits(t, 1, time.Minute)
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	var upstreamErr atomic.Value
	f := &fakeInstances{t: t, handle: func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		entered <- struct{}{}
		<-release
		upstreamErr.Store(fmt.Sprint(r.Context().Err()))
		io.WriteString(w, "judged")
	}}
	p := newPool()
	p.start = f.start
	front := newFront(p, slog.New(slog.DiscardHandler))

	first, cancelFirst := context.WithCancel(t.Context())
	firstDone := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		front.ServeHTTP(rec, post(first, "{}"))
		firstDone <- rec.Code
	}()
	<-entered
	cancelFirst() // the framework's request goes on

	second, cancelSecond := context.WithCancel(t.Context())
	secondDone := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		front.ServeHTTP(rec, post(second, "{}"))
		secondDone <- rec.Code
	}()
	cancelSecond() // while it waits for the only instance
	assert.Equal(t, http.StatusServiceUnavailable, <-secondDone)

	close(release)
	assert.Equal(t, http.StatusOK, <-firstDone)
	assert.Equal(t, "<nil>", upstreamErr.Load(), "the framework's request was cancelled with the client")
	assert.Equal(t, int32(1), calls.Load(), "a request whose client left while it waited was passed on")
}

// Only POST reaches the framework: for other methods its CloudEvents receiver starts the
// goroutine that takes a message but sends none, and that goroutine may take another
// request's event and run it with a context about to end.
func TestFrontPassesOnPostOnly(t *testing.T) {
	f := &fakeInstances{t: t, handle: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "judged") }}
	p := newPool()
	p.start = f.start
	front := newFront(p, slog.New(slog.DiscardHandler))
	for _, m := range []string{http.MethodGet, http.MethodOptions, http.MethodDelete, http.MethodPut, http.MethodHead} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(t.Context(), m, "/", nil)
		req.Header.Set("Ce-Id", "1")
		front.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusMethodNotAllowed, rec.Code, m)
		assert.Equal(t, http.MethodPost, rec.Header().Get("Allow"), m)
	}
	assert.Zero(t, f.started.Load())
	rec := httptest.NewRecorder()
	front.ServeHTTP(rec, post(t.Context(), "{}"))
	assert.Equal(t, http.StatusOK, rec.Code)
}

// brokenBody yields some bytes, then fails: a client whose connection broke mid-body.
type brokenBody struct{ sent bool }

func (b *brokenBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, `{"message":`), nil
	}
	return 0, errors.New("connection reset by peer")
}

func (b *brokenBody) Close() error { return nil }

// A body that breaks off fails the request, but the framework read a short body and is
// done with it: its instance stays in use.
func TestFrontKeepsAnInstanceWhenTheBodyBreaksOff(t *testing.T) {
	f := &fakeInstances{t: t, handle: func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, "judged")
	}}
	p := newPool()
	p.start = f.start
	front := newFront(p, slog.New(slog.DiscardHandler))

	req := post(t.Context(), "")
	req.Body, req.ContentLength = &brokenBody{}, -1
	rec := httptest.NewRecorder()
	front.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusBadGateway, rec.Code)

	rec = httptest.NewRecorder()
	front.ServeHTTP(rec, post(t.Context(), "{}"))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, int32(1), f.started.Load(), "the instance was retired")
}

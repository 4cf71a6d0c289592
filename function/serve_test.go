package function_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/engine"
)

// slowStore is a Store whose Attrs and Versions (an event's first call) wait until its
// context ends or the gate opens: the work of a watched object's event stays in flight as
// long as the test likes.
type slowStore struct {
	engine.Store
	entered chan struct{} // one token per call that started waiting
	gate    chan struct{}
}

func (s slowStore) Attrs(ctx context.Context, b, o string, gen int64) (engine.ObjectAttrs, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	select {
	case <-s.gate:
	case <-ctx.Done():
		return engine.ObjectAttrs{}, ctx.Err()
	}
	return s.Store.Attrs(ctx, b, o, gen)
}

func (s slowStore) Versions(ctx context.Context, b, o string) ([]engine.ObjectAttrs, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	select {
	case <-s.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Store.Versions(ctx, b, o)
}

// abandon sends a Pub/Sub push request with body and closes the connection at once, as
// a push client whose deadline passed while the request waited does.
func abandon(t *testing.T, url, body string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/"))
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: tamperguard\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", pushPath, len(body), body)
	require.NoError(t, err)
}

// storm is a load of abandoned and cancelled requests (sdk-go issues #1224, #1332: the
// CloudEvents receiver the Functions Framework uses hands every request to a goroutine
// over one unbuffered channel; a request whose context ended before its goroutine took a
// message, or whose goroutine's context was ended by another request's answer, left a
// send with no reader, forever, and from then on every request waited for the next one).
type storm struct {
	url    string
	client *http.Client
	// entered, if not nil, yields a token whenever the work for a watched object
	// started; some clients cancel then.
	entered <-chan struct{}
	// abandoned collects the message IDs of unwatched objects' abandoned push requests:
	// they reach the function, and must be judged.
	abandoned []string
}

// round fires n requests at once: half are Pub/Sub push requests whose client goes away
// as soon as they are sent, half are Eventarc requests whose client cancels at a deadline
// of up to 30ms or when some watched object's work started. A third are for the watched
// object install.sh, the rest for an unwatched one. Then it checks that normal requests
// for an unwatched object (no I/O) are still answered.
func (s *storm) round(t *testing.T, round, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range n {
		gen := int64(1000 + round*n + i)
		object := "unwatched.txt"
		if i%6 == 1 || i%6 == 2 {
			object = "install.sh"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				m := notification("OBJECT_FINALIZE", object, gen, time.Now(), nil)
				abandon(t, s.url, m.body)
				if object == "unwatched.txt" {
					mu.Lock()
					s.abandoned = append(s.abandoned, m.id)
					mu.Unlock()
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%31)*time.Millisecond)
			defer cancel()
			req := storageEvent("finalized", object, gen, time.Now()).request(t, s.url).WithContext(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				if resp, err := s.client.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			if i%6 == 1 && s.entered != nil {
				select {
				case <-s.entered:
					cancel()
				case <-done:
				}
			}
			<-done
		}()
	}
	wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		req := storageEvent("finalized", "unwatched.txt", int64(9000+round*10+i), time.Now()).request(t, s.url).WithContext(ctx)
		resp, err := s.client.Do(req)
		require.NoError(t, err, "round %d: request %d after %d abandoned or cancelled ones was not answered: the receiver is wedged", round, i, n)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "round %d, request %d", round, i)
	}
}

// judged waits until every abandoned request's event has a log line in logs.
func (s *storm) judged(t *testing.T, logs *logBuffer) {
	t.Helper()
	require.NotEmpty(t, s.abandoned)
	require.Eventually(t, func() bool {
		seen := map[any]bool{}
		for _, l := range logs.lines(t) {
			seen[l["message_id"]] = true
		}
		for _, id := range s.abandoned {
			if !seen[id] {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "abandoned events never judged:\n%s", logs)
}

// newStormClient returns a client of the test's own: connections it dialled for
// requests cancelled before they were sent would otherwise hold Serve's shutdown for 5s.
func newStormClient(t *testing.T) *http.Client {
	c := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// Pub/Sub push gives up on a request at its deadline, and many requests are in flight at
// once while some events' work is slow. After storms of abandoned and cancelled requests,
// normal requests must still be answered, and every event that reached the function must
// still be judged.
func TestServeAnswersAfterManyCancelledRequests(t *testing.T) {
	store := slowStore{entered: make(chan struct{}, 1024), gate: make(chan struct{})}
	h := newHarness(t, harnessOpts{wrap: func(s engine.Store) engine.Store { store.Store = s; return store }})
	gate := sync.OnceFunc(func() { close(store.gate) })
	// Whatever the outcome, let the slow work end so that Serve can stop.
	t.Cleanup(gate)

	s := &storm{url: h.url, client: newStormClient(t), entered: store.entered}
	for round := range 3 {
		s.round(t, round, 120)
	}
	// The slow work goes on once the gate opens, and no event was lost.
	gate()
	s.judged(t, h.logs)
}

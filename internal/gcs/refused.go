package gcs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
)

// ErrNothingListens: the storage emulator named by STORAGE_EMULATOR_HOST, on this machine,
// kept refusing connections: it is not running. Not retried.
var ErrNothingListens = errors.New("nothing listens there")

// LoopbackGiveUp is how long a loopback emulator may refuse connections before the client
// stops retrying: a local emulator that is down will not come up by itself.
var LoopbackGiveUp = 3 * time.Second

// NewClientReporting is NewClient for commands a person runs: when Cloud Storage refuses the
// connection, report is called once with what is retried, against what address and until
// when; against a loopback STORAGE_EMULATOR_HOST that keeps refusing for LoopbackGiveUp, the
// requests fail with ErrNothingListens instead of being retried until the deadline.
func NewClientReporting(ctx context.Context, report func(string), opts ...option.ClientOption) (*storage.Client, error) {
	host := os.Getenv("STORAGE_EMULATOR_HOST")
	if host == "" {
		return NewClient(ctx, opts...)
	}
	t := &refusals{base: http.DefaultTransport.(*http.Transport).Clone(), report: report, giveUp: LoopbackGiveUp, now: time.Now}
	return NewClient(ctx, append([]option.ClientOption{option.WithHTTPClient(&http.Client{Transport: t})}, opts...)...)
}

// refusals is a transport that notices refused connections.
type refusals struct {
	base   http.RoundTripper
	report func(string)
	giveUp time.Duration
	now    func() time.Time

	mu       sync.Mutex
	first    time.Time // first refusal of the current run of refusals
	reported bool
}

func (t *refusals) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		if err == nil {
			t.mu.Lock()
			t.first = time.Time{}
			t.mu.Unlock()
		}
		return resp, err
	}
	host := r.URL.Host
	now := t.now()
	t.mu.Lock()
	if t.first.IsZero() {
		t.first = now
	}
	refusedFor := now.Sub(t.first)
	first := !t.reported
	t.reported = true
	t.mu.Unlock()
	loopback := isLoopback(host)
	if first && t.report != nil {
		until := "the command's --timeout"
		if d, ok := r.Context().Deadline(); ok {
			until = d.Format(time.RFC3339)
		}
		msg := fmt.Sprintf("Cloud Storage at %s refused the connection; retrying until %s", host, until)
		if loopback {
			msg = fmt.Sprintf("the storage emulator at %s (STORAGE_EMULATOR_HOST) refused the connection; giving up after %s unless it starts", host, t.giveUp)
		}
		t.report(msg)
	}
	if loopback && refusedFor >= t.giveUp {
		// Not a net.Error: the SDK does not retry it.
		return nil, fmt.Errorf("storage emulator at %s: %w (is it running? check STORAGE_EMULATOR_HOST)", host, ErrNothingListens)
	}
	return resp, err
}

func isLoopback(hostport string) bool {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		h = hostport
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

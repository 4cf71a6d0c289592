package function

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"github.com/tamperguard/tamperguard/internal/cloudlog"
)

// MaxRequestBytes is the largest request the front passes on: Cloud Run's own limit. The
// Functions Framework reads a body whole, with no limit of its own.
const MaxRequestBytes = 32 << 20

// ShutdownGrace is how long Serve waits for events in flight when its context ends.
var ShutdownGrace = 30 * time.Second

// HandlingLimit bounds how long a request that the front passed on may run in the
// Functions Framework. The client going away does not end it (see the front, below); the
// deployed framework also ends it at the function's timeout (CLOUD_RUN_TIMEOUT_SECONDS).
// It is Pub/Sub's longest acknowledgement deadline: after it the event comes again anyway.
var HandlingLimit = 10 * time.Minute

// MaxEventsInFlight is how many requests the front has in the Functions Framework at once
// (Cloud Run's highest concurrency); more wait for one of them to end.
var MaxEventsInFlight = 1000

// The front stands between clients and the Functions Framework, in Serve and in the
// deployed function (FrontFramework). It exists because of the framework's CloudEvents
// receiver (github.com/cloudevents/sdk-go/v2 v2.15.2 and v2.16.2, the newest release;
// sdk-go issues #1224 and #1332; the fix proposed in pull request #1333 is not released).
// For every request the receiver starts a goroutine that waits on one unbuffered channel,
// shared by all the requests of a framework instance, or for the request's context to
// end; the request's handler then sends its message on that channel with no way out. Two
// requests at once can take each other's messages, so an event runs with the context of
// another request, which ends when that other request is answered; and a goroutine whose
// context ends before it took a message leaves one send without a reader: that handler
// never returns, and from then on each request waits for the next one to arrive; the last
// one waits for good. Pub/Sub push abandons requests at its deadline, and a fast event
// answered beside a slow one ends the slow one's borrowed context, so an instance wedged,
// and the events behind it were judged late or never.
//
// So the front never has two requests in one framework instance: it keeps a pool of
// instances on loopback ports (the framework cannot be stopped, so they live as long as
// the process) and passes each request to an idle one. A framework request's context
// ends only when its connection breaks or its handler returns, so the front also:
//   - passes requests on with a context of its own, which the client going away does not
//     end; only HandlingLimit does, long after the hand-over. The work for an abandoned
//     event therefore finishes and its answer is dropped; the sender delivers the event
//     again, and the engine's incidents make that delivery wait or find the work done;
//   - passes on POST only (the receiver starts its goroutine for other methods but sends
//     nothing);
//   - refuses bodies over MaxRequestBytes;
//   - retires an instance whose request did not come back (HandlingLimit passed, or the
//     connection broke): it is never given another request.
//
// A connection to the framework breaks early only when the client's body breaks off or
// runs over the limit: the framework then fails to read the body, before the hand-over
// (Pub/Sub push bodies, which it converts first) or after it (CloudEvents), never during.

var (
	registerOnce sync.Once
	registerErr  error

	frameworks = newPool() // every framework instance of the process

	serveMu sync.Mutex // one Serve at a time: VerifyObject serves one Handler
)

// startFramework starts one more Functions Framework instance serving VerifyObject on a
// loopback port and returns its URL once it accepts connections.
func startFramework() (*url.URL, error) {
	registerOnce.Do(func() {
		// The framework reads its registrations when an instance starts. Served at "/"
		// (and at "/VerifyObject", where the init registration puts it) when
		// FUNCTION_TARGET is unset; with FUNCTION_TARGET=VerifyObject, at "/" only.
		if err := funcframework.RegisterCloudEventFunctionContext(context.Background(), "/", VerifyObject); err != nil {
			registerErr = fmt.Errorf("registering %s with the Functions Framework: %w", Name, err)
		}
		// Without FUNCTION_TARGET the framework prints a plain "Serving function" line to
		// stdout for every instance, in the middle of the JSON log; with it, it serves
		// VerifyObject (the init registration) at "/" and prints nothing.
		if os.Getenv("FUNCTION_TARGET") == "" {
			registerErr = os.Setenv("FUNCTION_TARGET", Name)
		}
	})
	if registerErr != nil {
		return nil, registerErr
	}
	var last error
	for range 3 { // the free port found may be taken before the framework listens on it
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a loopback port for the Functions Framework: %w", err)
		}
		addr := l.Addr().String()
		l.Close()
		_, port, _ := net.SplitHostPort(addr)
		errc := make(chan error, 1)
		go func() { errc <- funcframework.StartHostPort("127.0.0.1", port) }()
		if last = waitListening(addr, errc, 10*time.Second); last == nil {
			return &url.URL{Scheme: "http", Host: addr}, nil
		}
	}
	return nil, fmt.Errorf("starting the Functions Framework: %w", last)
}

// waitListening waits until addr accepts connections, errc reports that the server
// stopped, or limit passes.
func waitListening(addr string, errc <-chan error, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case err := <-errc:
			return err
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listened on %s within %s", addr, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pool holds the framework instances: each one is idle or has exactly one request.
type pool struct {
	mu    sync.Mutex
	idle  []*url.URL
	live  int           // instances idle or busy (retired ones are not counted)
	freed chan struct{} // a token when an instance becomes idle or live drops
	start func() (*url.URL, error)
}

func newPool() *pool { return &pool{freed: make(chan struct{}, 1), start: startFramework} }

// get returns an idle instance, starting one when none is idle and fewer than
// MaxEventsInFlight are live, else waits for one until ctx ends.
func (p *pool) get(ctx context.Context) (*url.URL, error) {
	for {
		p.mu.Lock()
		if n := len(p.idle); n > 0 {
			u := p.idle[n-1]
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			return u, nil
		}
		if p.live < MaxEventsInFlight {
			p.live++
			p.mu.Unlock()
			u, err := p.start()
			if err != nil {
				p.drop()
				return nil, err
			}
			return u, nil
		}
		p.mu.Unlock()
		select {
		case <-p.freed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// put makes u idle again.
func (p *pool) put(u *url.URL) {
	p.mu.Lock()
	p.idle = append(p.idle, u)
	p.mu.Unlock()
	p.signal()
}

// drop forgets an instance that failed to start or is retired; a retired one is never
// used again (it cannot be stopped either).
func (p *pool) drop() {
	p.mu.Lock()
	p.live--
	p.mu.Unlock()
	p.signal()
}

func (p *pool) signal() {
	select {
	case p.freed <- struct{}{}:
	default:
	}
}

// passing is what the front knows of one request it passes on.
type passing struct {
	instance *url.URL
	body     *watchedBody // nil: no body
	retire   bool         // the instance may still be busy or broken: never use it again
}

type passingKey struct{}

// watchedBody notes whether reading the client's body failed: the body broke off or ran
// over the limit, and the framework, which then read a short body, answers on its own.
type watchedBody struct {
	io.ReadCloser
	failed atomic.Bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.failed.Store(true)
	}
	return n, err
}

// newFront returns the handler in front of the framework instances of p (see above).
func newFront(p *pool, log *slog.Logger) http.Handler {
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(r.In.Context().Value(passingKey{}).(*passing).instance)
			r.Out.Host = r.In.Host
		},
		// The framework listens on loopback: never through a proxy from the environment.
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     90 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			pass := r.Context().Value(passingKey{}).(*passing)
			if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("request body over %d bytes", MaxRequestBytes), http.StatusRequestEntityTooLarge)
				return
			}
			if pass.body == nil || !pass.body.failed.Load() {
				// The framework did not answer within HandlingLimit, or its connection
				// broke: its request may still run there.
				pass.retire = true
				log.Error("passing a request to the Functions Framework failed; that framework instance is retired", "error", err.Error())
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "events are delivered with POST", http.StatusMethodNotAllowed)
			return
		}
		var body *watchedBody
		if r.Body != nil && r.Body != http.NoBody {
			body = &watchedBody{ReadCloser: http.MaxBytesReader(w, r.Body, MaxRequestBytes)}
			r.Body = body
		}
		if err := noteTrace(r); err != nil {
			if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("request body over %d bytes", MaxRequestBytes), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "reading the request body failed", http.StatusBadRequest)
			return
		}
		u, err := p.get(r.Context())
		if err != nil {
			if r.Context().Err() == nil {
				log.Error("no Functions Framework instance for a request", "error", err.Error())
			}
			http.Error(w, "no function instance is available", http.StatusServiceUnavailable)
			return
		}
		pass := &passing{instance: u, body: body}
		defer func() {
			if pass.retire {
				p.drop()
			} else {
				p.put(u)
			}
		}()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), HandlingLimit)
		defer cancel()
		proxy.ServeHTTP(w, r.WithContext(context.WithValue(ctx, passingKey{}, pass)))
	})
}

// Serve serves h as VerifyObject through the Functions Framework on ln until ctx is done,
// then stops accepting events, waits up to ShutdownGrace for the ones in flight, and
// returns nil. Only one Serve runs at a time in a process.
func Serve(ctx context.Context, ln net.Listener, h *Handler) error {
	if ln == nil || h == nil {
		return errors.New("function.Serve: a listener and a handler are required")
	}
	if !serveMu.TryLock() {
		return errors.New("another Serve is running in this process")
	}
	defer serveMu.Unlock()
	// One instance up front, so that a framework that cannot start fails Serve.
	u, err := frameworks.get(ctx)
	if err != nil {
		return err
	}
	frameworks.put(u)
	prev := active.Swap(h)
	defer active.Store(prev)

	srv := &http.Server{Handler: newFront(frameworks, h.log), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("events still in flight after %s: %w", ShutdownGrace, err)
	}
	<-done
	return nil
}

var frontOnce sync.Once

// FrontFramework puts the front (see above) in the deployed function's process; the
// root package calls it from its init, after ColdStart. The buildpack's main then starts
// the Functions Framework on $PORT and blocks in it; that port is Cloud Run's way in, so
// the front takes it, and $PORT is set to 0, so that main's framework instance listens on
// a port of the kernel's choosing that nothing uses (it keeps main alive). Events reach
// the framework instances of the front's pool, one request per instance. If the port
// cannot be taken the instance logs CRITICAL and exits: it must not serve unguarded.
func FrontFramework() {
	frontOnce.Do(func() {
		log := cloudlog.New(stdout, nil)
		if h := active.Load(); h != nil {
			log = h.log
		}
		fail := func(err error) {
			log.Log(context.Background(), cloudlog.LevelCritical, "tamperguard cannot serve: "+err.Error())
			exit(1)
		}
		port := os.Getenv("PORT")
		if port == "" {
			port = "8080" // the buildpack's default
		}
		ln, err := net.Listen("tcp", ":"+port)
		if err != nil {
			fail(fmt.Errorf("listening on $PORT: %w", err))
			return
		}
		if err := os.Setenv("PORT", "0"); err != nil {
			ln.Close()
			fail(err)
			return
		}
		srv := &http.Server{Handler: newFront(frameworks, log), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			fail(fmt.Errorf("serving on port %s: %w", port, srv.Serve(ln)))
		}()
	})
}

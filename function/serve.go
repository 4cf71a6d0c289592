package function

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
)

// MaxRequestBytes is the largest request Serve passes on: Cloud Run's own limit. The
// Functions Framework reads a body whole, with no limit of its own.
const MaxRequestBytes = 32 << 20

// ShutdownGrace is how long Serve waits for events in flight when its context ends.
var ShutdownGrace = 30 * time.Second

// The Functions Framework can be started but never stopped (funcframework.Start is
// http.ListenAndServe on a handler it does not export), and it reads its registrations
// once, when it starts. So it is started once per process, on a loopback port, serving
// VerifyObject; Serve puts an http.Server that can shut down gracefully in front of it.
// The requests that reach the function are exactly the ones the deployed function gets:
// the framework's CloudEvent decoding, its conversion of legacy and Pub/Sub push bodies,
// its status codes.
var (
	frameworkOnce sync.Once
	frameworkURL  *url.URL
	frameworkErr  error

	serveMu sync.Mutex // one Serve at a time: VerifyObject serves one Handler
)

func startFramework() (*url.URL, error) {
	frameworkOnce.Do(func() {
		// Served at "/" (and at "/VerifyObject", where the init registration puts it) when
		// FUNCTION_TARGET is unset; with FUNCTION_TARGET=VerifyObject, at "/" only.
		if err := funcframework.RegisterCloudEventFunctionContext(context.Background(), "/", VerifyObject); err != nil {
			frameworkErr = fmt.Errorf("registering %s with the Functions Framework: %w", Name, err)
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			frameworkErr = err
			return
		}
		addr := l.Addr().(*net.TCPAddr)
		l.Close()
		port := fmt.Sprint(addr.Port)
		errc := make(chan error, 1)
		go func() { errc <- funcframework.StartHostPort("127.0.0.1", port) }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			select {
			case err := <-errc:
				frameworkErr = fmt.Errorf("starting the Functions Framework: %w", err)
				return
			default:
			}
			if c, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
				c.Close()
				frameworkURL = &url.URL{Scheme: "http", Host: addr.String()}
				return
			}
			if time.Now().After(deadline) {
				frameworkErr = errors.New("the Functions Framework did not start listening within 10s")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return frameworkURL, frameworkErr
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
	upstream, err := startFramework()
	if err != nil {
		return err
	}
	prev := active.Swap(h)
	defer active.Store(prev)

	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			r.Out.Host = r.In.Host
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("request body over %d bytes", MaxRequestBytes), http.StatusRequestEntityTooLarge)
				return
			}
			if r.Context().Err() == nil {
				h.log.Error("passing a request to the Functions Framework failed", "error", err.Error())
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
			proxy.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
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

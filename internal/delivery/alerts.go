package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tamperguard/tamperguard/internal/engine"
)

// Defaults of the alert dispatcher.
const (
	// DefaultAlertQueue bounds the alerts waiting or in flight; past it an alert is not
	// queued (its incident stays un-alerted and its event is retried).
	DefaultAlertQueue = 1024
	// DefaultAlertSenders bounds the alerts sent at once.
	DefaultAlertSenders = 8
	// DefaultAlertTimeout bounds one alert, the notifier's own retries included.
	DefaultAlertTimeout = 45 * time.Second
)

// ErrAlertQueueFull: too many alerts are waiting; this one was not queued. Its incident
// stays un-alerted, so the retry of its event (or the next audit) sends it.
var ErrAlertQueueFull = errors.New("alert queue full")

// Dispatcher sends alerts outside the work slots: a slow or hanging Slack never holds a
// restore. Alerts about one object go out in the order they were queued (so a thread's
// parent precedes its replies); alerts about different objects go out concurrently, at
// most senders at a time. Every alert is settled with the engine (the outbox).
type Dispatcher struct {
	eng     *engine.Engine
	n       engine.Notifier
	log     *slog.Logger
	timeout time.Duration

	queued  chan struct{} // one token per queued or running alert
	senders chan struct{} // one token per alert being sent

	mu   sync.Mutex
	tail map[string]chan struct{} // per object: done when its last queued alert is
}

// DispatcherOptions configure a Dispatcher; zero values give the defaults.
type DispatcherOptions struct {
	Queue, Senders int
	Timeout        time.Duration
	Logger         *slog.Logger
}

// NewDispatcher returns a dispatcher sending through n (nil: alerts are only settled).
func NewDispatcher(eng *engine.Engine, n engine.Notifier, o DispatcherOptions) *Dispatcher {
	if o.Queue <= 0 {
		o.Queue = DefaultAlertQueue
	}
	if o.Senders <= 0 {
		o.Senders = DefaultAlertSenders
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultAlertTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Dispatcher{eng: eng, n: n, log: o.Logger, timeout: o.Timeout,
		queued: make(chan struct{}, o.Queue), senders: make(chan struct{}, o.Senders), tail: map[string]chan struct{}{}}
}

// Send queues d's alert and returns a channel that yields its fate once: nil when it went
// out and was recorded, an error otherwise. A decision with no alert due yields nil at once.
// The dispatcher works on a copy of d; the caller must not send the same decision twice.
func (a *Dispatcher) Send(dec *engine.Decision) <-chan error {
	res := make(chan error, 1)
	if !dec.AlertDue() {
		res <- nil
		return res
	}
	cp := *dec
	d := &cp
	select {
	case a.queued <- struct{}{}:
	default:
		a.log.Error("alert queue full; the alert is sent when the event is retried", "bucket", d.Bucket, "object", d.Object, "incident", d.Incident)
		_ = a.eng.Settle(d, ErrAlertQueueFull)
		res <- ErrAlertQueueFull
		return res
	}
	key := d.Bucket + "/" + d.Object
	done := make(chan struct{})
	a.mu.Lock()
	prev := a.tail[key]
	a.tail[key] = done
	a.mu.Unlock()
	go func() {
		defer func() { <-a.queued }()
		defer func() {
			a.mu.Lock()
			if a.tail[key] == done {
				delete(a.tail, key)
			}
			a.mu.Unlock()
			close(done)
		}()
		if prev != nil {
			<-prev
		}
		a.senders <- struct{}{}
		defer func() { <-a.senders }()
		res <- a.send(d)
	}()
	return res
}

func (a *Dispatcher) send(d *engine.Decision) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("alerting panicked: %v", r)
			_ = a.eng.Settle(d, err)
		}
	}()
	if err := a.eng.Alert(ctx, d, a.n); err != nil {
		return fmt.Errorf("alert about %s not delivered: %w", d.Ref(), err)
	}
	return nil
}

// Wait sends d's alert and waits for its fate, or for ctx. An alert still in flight when
// ctx ends goes on and settles by itself.
func (a *Dispatcher) Wait(ctx context.Context, d *engine.Decision) error {
	select {
	case err := <-a.Send(d):
		return err
	case <-ctx.Done():
		return fmt.Errorf("alert about %s still in flight: %w", d.Ref(), ctx.Err())
	}
}

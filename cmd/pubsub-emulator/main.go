// Command pubsub-emulator runs an in-memory Pub/Sub emulator on a loopback port: the Go
// SDK's own fake (cloud.google.com/go/pubsub/v2/pstest) with a command line, for the local
// tamperguard stack when gcloud's Pub/Sub emulator is not installed.
//
//	pubsub-emulator [--host 127.0.0.1] [--port 8085] [--project P]
//	                [--topic NAME]... [--subscription NAME[=TOPIC]]...
//
// It creates the topics and subscriptions the flags name before it says it is listening,
// and any client can create more through the API (PUBSUB_EMULATOR_HOST=HOST:PORT). Short
// names are in --project; full names (projects/P/topics/T) work too. A subscription is
// attached to TOPIC, or to the only --topic. Nothing is persisted; SIGINT or SIGTERM
// stops it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type names []string

func (n *names) String() string     { return strings.Join(*n, ",") }
func (n *names) Set(v string) error { *n = append(*n, v); return nil }

var (
	projectID = regexp.MustCompile(`^[a-z0-9][a-z0-9.:-]{0,62}$`)
	// resourceID: Pub/Sub's rule for topic and subscription IDs.
	resourceID = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$`)
)

// fullName expands a short name to projects/PROJECT/KIND/NAME and checks a full one.
func fullName(project, kind, name string) (string, error) {
	if !strings.Contains(name, "/") {
		if !resourceID.MatchString(name) || strings.HasPrefix(name, "goog") {
			return "", fmt.Errorf("%q is not a valid %s ID (3 to 255 letters, digits and -._~+%%, starting with a letter)", name, strings.TrimSuffix(kind, "s"))
		}
		return "projects/" + project + "/" + kind + "/" + name, nil
	}
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "projects" || !projectID.MatchString(parts[1]) || parts[2] != kind || !resourceID.MatchString(parts[3]) {
		return "", fmt.Errorf("%q is not projects/PROJECT/%s/NAME", name, kind)
	}
	return name, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pubsub-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pubsub-emulator [--host 127.0.0.1] [--port 8085] [--project P] [--topic NAME]... [--subscription NAME[=TOPIC]]... [--ack-deadline 60s]")
		fmt.Fprintln(stderr, "\nAn in-memory Pub/Sub emulator (pstest). Point clients at it with PUBSUB_EMULATOR_HOST=HOST:PORT.")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	host := fs.String("host", "127.0.0.1", "address to listen on (the emulator has no authentication: keep it on loopback)")
	port := fs.Int("port", 8085, "port to listen on (0: any free port)")
	project := fs.String("project", "tamperguard-local", "project of short topic and subscription names")
	var topics, subs names
	fs.Var(&topics, "topic", "create this topic (repeatable)")
	fs.Var(&subs, "subscription", "create this pull subscription, NAME or NAME=TOPIC (repeatable)")
	ackDeadline := fs.Duration("ack-deadline", time.Minute, "the subscriptions' ack deadline: a message its puller neither acknowledged nor extended is delivered again after it (10s to 600s)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "pubsub-emulator: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() != 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if *ackDeadline < 10*time.Second || *ackDeadline > 600*time.Second || *ackDeadline%time.Second != 0 {
		return fail("--ack-deadline %s: want whole seconds from 10s to 600s, as Pub/Sub allows", *ackDeadline)
	}
	if *port < 0 || *port > 65535 {
		return fail("--port %d is not a port", *port)
	}
	if !projectID.MatchString(*project) {
		return fail("--project %q is not a project ID", *project)
	}
	var topicNames []string
	for _, t := range topics {
		n, err := fullName(*project, "topics", t)
		if err != nil {
			return fail("--topic: %v", err)
		}
		topicNames = append(topicNames, n)
	}
	type subSpec struct{ name, topic string }
	var subSpecs []subSpec
	for _, s := range subs {
		name, topic, hasTopic := strings.Cut(s, "=")
		n, err := fullName(*project, "subscriptions", name)
		if err != nil {
			return fail("--subscription: %v", err)
		}
		var t string
		switch {
		case hasTopic:
			if t, err = fullName(*project, "topics", topic); err != nil {
				return fail("--subscription %s: %v", name, err)
			}
		case len(topicNames) == 1:
			t = topicNames[0]
		default:
			return fail("--subscription %s: say which topic it is on (NAME=TOPIC), there are %d topics", name, len(topicNames))
		}
		subSpecs = append(subSpecs, subSpec{n, t})
	}
	if ip := net.ParseIP(*host); *host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		fmt.Fprintf(stderr, "pubsub-emulator: warning: listening on %s, which is not loopback; anyone who reaches it can read and publish\n", *host)
	}

	srv, err := start(net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return fail("%v", err)
	}
	defer srv.Close()
	for _, t := range topicNames {
		if _, err := srv.GServer.CreateTopic(ctx, &pubsubpb.Topic{Name: t}); err != nil {
			return fail("creating topic %s: %v", t, err)
		}
	}
	for _, s := range subSpecs {
		if _, err := srv.GServer.CreateSubscription(ctx, &pubsubpb.Subscription{Name: s.name, Topic: s.topic, AckDeadlineSeconds: int32(*ackDeadline / time.Second)}); err != nil {
			return fail("creating subscription %s: %v", s.name, err)
		}
	}
	fmt.Fprintf(stdout, "pubsub-emulator: listening on %s\n", srv.Addr)
	for _, t := range topicNames {
		fmt.Fprintf(stdout, "  topic         %s\n", t)
	}
	for _, s := range subSpecs {
		fmt.Fprintf(stdout, "  subscription  %s (on %s)\n", s.name, s.topic)
	}
	fmt.Fprintf(stdout, "export PUBSUB_EMULATOR_HOST=%s\n", srv.Addr)
	<-ctx.Done()
	fmt.Fprintln(stdout, "pubsub-emulator: stopped")
	return 0
}

// start listens at addr; pstest panics when it cannot.
func start(addr string) (srv *pstest.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot listen on %s: %v", addr, r)
		}
	}()
	return pstest.NewServerWithAddress(addr), nil
}

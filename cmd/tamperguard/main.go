// Command tamperguard checks that published objects are the bytes the maintainers signed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"cloud.google.com/go/storage"

	"github.com/tamperguard/tamperguard/function"
	"github.com/tamperguard/tamperguard/internal/cloudlog"
	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/version"
)

// Exit codes: every command uses the same three.
const (
	exitOK       = 0
	exitTampered = 1
	exitError    = 2
)

// errTampered makes a command exit 1 after it printed its results.
var errTampered = errors.New("tampered")

// env is what a command may read from outside: the edge of the program.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	terminal       bool // stderr is a terminal: progress lines are welcome
	// storageClient connects to Cloud Storage and says how to let go of it; tests point
	// it at a fake.
	storageClient func(ctx context.Context) (*storage.Client, func() error, error)
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func commands() []command {
	return []command{
		{"demo", "replay the Codecov attack on a local stack in this process: detect, restore, alert (no network)", runDemo},
		{"check", "judge objects in a bucket against their signed releases (--restore repairs)", runCheck},
		{"audit", "judge every object the rules cover, and report missing ones (--restore repairs)", runAudit},
		{"watch", "pull the bucket's notifications from a Pub/Sub subscription and judge every change (restore, alert)", runWatch},
		{"serve", "serve the Cloud Function locally through the Functions Framework (post CloudEvents to it)", runServe},
		{"package", "write the Cloud Function's source archive (deterministic zip, built as the buildpack builds it)", runPackage},
		{"verify", "check a local file against the signed release that vouches for it", runVerify},
		{"version", "print tamperguard's version: module version, VCS revision and time, Go version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	fi, err := os.Stderr.Stat()
	terminal := err == nil && fi.Mode()&os.ModeCharDevice != 0
	e := env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, terminal: terminal,
		storageClient: func(ctx context.Context) (*storage.Client, func() error, error) {
			// A person waits on the CLI: say at once when storage refuses the connection.
			c, err := gcs.NewClientReporting(ctx, func(msg string) { fmt.Fprintf(os.Stderr, "tamperguard: %s\n", msg) })
			if err != nil {
				return nil, nil, err
			}
			return c, c.Close, nil
		}}
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// run maps a command's error to an exit code; commands print their own results. Help goes
// to stdout; every error is one line on stderr.
func run(ctx context.Context, e env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitError
	}
	switch args[0] {
	case "-h", "--help":
		usage(e.stdout)
		return exitOK
	case "help":
		if len(args) == 1 {
			usage(e.stdout)
			return exitOK
		}
		return run(ctx, e, []string{args[1], "-h"})
	case "--version", "-version":
		return run(ctx, e, []string{"version"})
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, e, args[1:])
			switch {
			case err == nil:
				return exitOK
			case errors.Is(err, flag.ErrHelp):
				return exitOK
			case errors.Is(err, errTampered):
				return exitTampered
			case errors.Is(err, errUnverifiable):
				return exitError
			default:
				fmt.Fprintf(e.stderr, "tamperguard %s: %v\n", c.name, err)
				var ue usageError
				if errors.As(err, &ue) {
					fmt.Fprintf(e.stderr, "run 'tamperguard help %s' for its flags\n", c.name)
				}
				return exitError
			}
		}
	}
	fmt.Fprintf(e.stderr, "tamperguard: unknown command %q (run 'tamperguard help' for the list)\n", args[0])
	return exitError
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tamperguard COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'tamperguard help COMMAND' for a command's flags, 'tamperguard version' for the build.")
	fmt.Fprintln(w, "Exit status: 0 all verified, 1 tampered, 2 unverifiable or an error.")
}

// usageError is a mistake in how a command was called: run adds a hint to see its help.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// misuse reports a mistake in a command's arguments.
func misuse(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// parseInterspersed parses flags that may come before or after the positional arguments
// ("verify FILE --object NAME" works as well as "verify --object NAME FILE"). -h prints the
// command's help on stdout and returns flag.ErrHelp; a bad flag is returned, not printed,
// so that it is reported once.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printHelp(fs)
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// helps holds each flag set's usage line and where its help goes.
var helps sync.Map // *flag.FlagSet → help

type help struct {
	line string
	out  io.Writer
}

// flagSet makes a command's flag set. It prints nothing itself: parseInterspersed prints
// the help when asked, and run reports errors.
func flagSet(e env, name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	helps.Store(fs, help{line: usageLine, out: e.stdout})
	return fs
}

func printHelp(fs *flag.FlagSet) {
	v, ok := helps.Load(fs)
	if !ok {
		return
	}
	h := v.(help)
	fmt.Fprintf(h.out, "usage: tamperguard %s\n", h.line)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(h.out, "\nflags:\n")
		fs.SetOutput(h.out)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// configFlag defines --config and returns what to hand config.Load after parsing: the
// file when the flag was given, else "" so the environment is consulted before the default.
func configFlag(fs *flag.FlagSet) func() string {
	file := fs.String("config", config.DefaultFile, "configuration `file` (else $"+config.EnvConfig+" or $"+config.EnvConfigFile+")")
	return func() string {
		if !wasSet(fs, "config") {
			return ""
		}
		return *file
	}
}

// wasSet reports whether the flag was given on the command line.
func wasSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func runVersion(_ context.Context, e env, args []string) error {
	fs := flagSet(e, "version", "version [--json]")
	asJSON := fs.Bool("json", false, "print the build information as JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return misuse("version takes no arguments (got %q)", pos[0])
	}
	v := version.Get()
	if *asJSON {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	if _, err = fmt.Fprintln(e.stdout, v.String()); err != nil {
		return err
	}
	if v.Revision == "" {
		fmt.Fprintln(e.stderr, "tamperguard version: this build carries no VCS revision: it was built outside a git checkout, or with VCS stamping off (GOFLAGS=-buildvcs=false); go build -buildvcs=true in a checkout stamps it")
	}
	return nil
}

// plural is "1 rule", "2 rules".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// commandLogger is the log of a long-running command (watch): Cloud Logging JSON unless
// stderr is a terminal or --log-format says otherwise, at TAMPERGUARD_LOG_LEVEL, labelled
// with the deployment.
func commandLogger(e env, format string, w io.Writer) (*slog.Logger, error) {
	f, err := cloudlog.ParseFormat(format, e.terminal)
	if err != nil {
		return nil, err
	}
	level, ok := cloudlog.ParseLevel(e.getenv(function.EnvLogLevel))
	if !ok {
		return nil, fmt.Errorf("%s=%q is not DEBUG, INFO, WARNING, ERROR or CRITICAL", function.EnvLogLevel, e.getenv(function.EnvLogLevel))
	}
	return cloudlog.WithLabels(cloudlog.NewFormat(w, f, level), deploymentLabels(e)), nil
}

// deploymentLabels label every log line with the deployment (TAMPERGUARD_DEPLOYMENT, which
// the Terraform module sets to its name prefix) and the version.
func deploymentLabels(e env) map[string]string {
	labels := map[string]string{"tamperguard_version": version.Get().Short()}
	if d := e.getenv("TAMPERGUARD_DEPLOYMENT"); d != "" {
		labels["deployment"] = d
	}
	return labels
}

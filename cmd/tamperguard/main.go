// Command tamperguard checks that published objects are the bytes the maintainers signed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"cloud.google.com/go/storage"

	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/gcs"
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
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	fi, err := os.Stderr.Stat()
	terminal := err == nil && fi.Mode()&os.ModeCharDevice != 0
	e := env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, terminal: terminal,
		storageClient: func(ctx context.Context) (*storage.Client, func() error, error) {
			c, err := gcs.NewClient(ctx)
			if err != nil {
				return nil, nil, err
			}
			return c, c.Close, nil
		}}
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// run maps a command's error to an exit code; commands print their own results.
func run(ctx context.Context, e env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stderr)
		if len(args) == 0 {
			return exitError
		}
		return exitOK
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
				return exitError
			}
		}
	}
	fmt.Fprintf(e.stderr, "tamperguard: unknown command %q\n\n", args[0])
	usage(e.stderr)
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
	fmt.Fprintln(w, "Run 'tamperguard COMMAND -h' for a command's flags.")
	fmt.Fprintln(w, "Exit status: 0 all verified, 1 tampered, 2 unverifiable or an error.")
}

// parseInterspersed parses flags that may come before or after the positional arguments
// ("verify FILE --object NAME" works as well as "verify --object NAME FILE").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
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

// flagSet makes a command's flag set that reports errors, not exits.
func flagSet(e env, name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: tamperguard %s\n\nflags:\n", usageLine)
		fs.PrintDefaults()
	}
	return fs
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

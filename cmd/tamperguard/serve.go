package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/tamperguard/tamperguard/function"
	"github.com/tamperguard/tamperguard/internal/cloudlog"
)

// runServe serves the Cloud Function locally through the Functions Framework: the same
// VerifyObject, the same decoding and the same logs as the deployed function, with the
// configuration the CLI loads (--config, else TAMPERGUARD_CONFIG or
// TAMPERGUARD_CONFIG_FILE) and Cloud Storage or the emulator named by
// STORAGE_EMULATOR_HOST. Post Eventarc-shaped events to it with curl (see
// testdata/events/README.md). It stops on SIGINT/SIGTERM after the events in flight.
func runServe(ctx context.Context, e env, args []string) error {
	fs := flagSet(e, "serve", "serve [--config FILE] [--host HOST] [--port PORT]")
	configFile := configFlag(fs)
	host := fs.String("host", "localhost", "address to listen on (0.0.0.0: every interface)")
	port := fs.String("port", "8080", "port to listen on (0: any free port; default $PORT if set, else 8080)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !wasSet(fs, "port") && e.getenv("PORT") != "" {
		*port = e.getenv("PORT")
	}
	if n, err := strconv.ParseUint(*port, 10, 16); err != nil || (n == 0 && *port != "0") {
		return fmt.Errorf("--port %q is not a port number", *port)
	}
	level, ok := cloudlog.ParseLevel(e.getenv(function.EnvLogLevel))
	if !ok {
		return fmt.Errorf("%s=%q is not DEBUG, INFO, WARNING, ERROR or CRITICAL", function.EnvLogLevel, e.getenv(function.EnvLogLevel))
	}
	log := cloudlog.New(e.stdout, level)

	h, err := function.FromEnv(ctx, function.Env{Getenv: e.getenv, ConfigFile: configFile(), StorageClient: e.storageClient, Logger: log})
	if err != nil {
		return err
	}
	defer h.Close()

	ln, err := net.Listen("tcp", net.JoinHostPort(*host, *port))
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String() + "/"
	log.Info("serving "+function.Name+" through the Functions Framework", "url", url)
	fmt.Fprintf(e.stderr, "tamperguard serve: listening on %s (Ctrl-C stops)\n", url)
	err = function.Serve(ctx, ln, h)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if err == nil {
		log.Info("stopped")
	}
	return err
}

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
	defaultPort := "8080"
	if p := e.getenv("PORT"); p != "" {
		defaultPort = p // as the platform sets it; shown as the default
	}
	port := fs.String("port", defaultPort, "port to listen on (0: any free port; the default is $PORT when set)")
	logFormat := fs.String("log-format", "json", "json (Cloud Logging's structured lines, as the deployed function writes them) or text")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return misuse("unexpected argument %q", pos[0])
	}
	if n, err := strconv.ParseUint(*port, 10, 16); err != nil || (n == 0 && *port != "0") {
		return fmt.Errorf("--port %q is not a port number", *port)
	}
	level, ok := cloudlog.ParseLevel(e.getenv(function.EnvLogLevel))
	if !ok {
		return fmt.Errorf("%s=%q is not DEBUG, INFO, WARNING, ERROR or CRITICAL", function.EnvLogLevel, e.getenv(function.EnvLogLevel))
	}
	format, err := cloudlog.ParseFormat(*logFormat, false)
	if err != nil {
		return misuse("--log-format: %v", err)
	}
	log := cloudlog.WithLabels(cloudlog.NewFormat(e.stdout, format, level), deploymentLabels(e))

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

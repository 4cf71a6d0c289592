package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/demo"
)

// world is what an end-to-end test starts from: the programs built from this module, the
// emulator stack (Pub/Sub, then fake-gcs-server publishing the bucket's notifications), a
// release signed on the spot, and a configuration file.
type world struct {
	ctx   context.Context
	dir   string
	bins  demo.Binaries
	stack *demo.Stack
	rel   *demo.Release
	cfg   string // the configuration file: rel.Config unless the test writes another
}

// newWorld starts a world that lives until the test ends (or timeout passes).
func newWorld(t *testing.T, timeout time.Duration, o demo.StackOptions) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	w := &world{ctx: ctx, dir: t.TempDir()}
	var err error
	w.bins, err = demo.Build(ctx, w.dir)
	require.NoError(t, err)
	if o.Project == "" {
		o.Project, o.Topic, o.Subscription = "tamperguard-local", "gcs-events", "tamperguard-watch"
	}
	if o.Buckets == nil {
		o.Buckets, o.EventBucket = []string{bucket, stateBucket}, bucket
	}
	w.stack, err = demo.StartEmulators(ctx, w.bins, o)
	require.NoError(t, err)
	t.Cleanup(w.stack.Close)
	w.rel, err = demo.NewRelease(w.dir, "v1.0.0", demo.ScriptName, demo.Script(0))
	require.NoError(t, err)
	w.cfg = w.writeConfig(t, w.rel.Config(bucket, demo.ScriptName, stateBucket))
	return w
}

// writeConfig replaces the configuration file's contents.
func (w *world) writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(w.dir, "tamperguard.yaml")
	require.NoError(t, os.WriteFile(p, []byte(yaml), 0o644))
	return p
}

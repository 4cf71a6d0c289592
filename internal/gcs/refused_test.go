package gcs

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A local emulator that is not running: one line saying so, then a clear error within a few
// seconds instead of silent retries until the command's timeout.
func TestRefusedLoopbackEmulatorFailsLoudlyAndSoon(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now

	t.Setenv("STORAGE_EMULATOR_HOST", addr)
	old := LoopbackGiveUp
	LoopbackGiveUp = 200 * time.Millisecond
	t.Cleanup(func() { LoopbackGiveUp = old })
	var reports []string
	c, err := NewClientReporting(context.Background(), func(s string) { reports = append(reports, s) })
	require.NoError(t, err)
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err = New(c).Attrs(ctx, "my-downloads", "install.sh", 0)
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrNothingListens), "%v", err)
	assert.Contains(t, err.Error(), addr)
	assert.Less(t, time.Since(start), 30*time.Second, "not retried until the deadline")
	require.Len(t, reports, 1, "said once")
	assert.Contains(t, reports[0], addr)
	assert.Contains(t, reports[0], "STORAGE_EMULATOR_HOST")
}

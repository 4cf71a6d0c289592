package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listening = regexp.MustCompile(`pubsub-emulator: listening on (\S+)\n`)

func TestEmulatorCreatesAndServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--port", "0", "--project", "p1", "--topic", "gcs-events",
			"--subscription", "watch", "--subscription", "projects/p2/subscriptions/other=projects/p1/topics/gcs-events"}, &out, &errOut)
	}()
	var addr string
	require.Eventually(t, func() bool {
		m := listening.FindStringSubmatch(out.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, 5*time.Second, 5*time.Millisecond, errOut.String())
	host, _, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host, "loopback by default")
	assert.Contains(t, out.String(), "topic         projects/p1/topics/gcs-events\n")
	assert.Contains(t, out.String(), "subscription  projects/p1/subscriptions/watch (on projects/p1/topics/gcs-events)\n")
	assert.Contains(t, out.String(), "export PUBSUB_EMULATOR_HOST="+addr+"\n")

	client, err := pubsub.NewClient(ctx, "p1", option.WithEndpoint(addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	require.NoError(t, err)
	defer client.Close()
	_, err = client.Publisher("gcs-events").Publish(ctx, &pubsub.Message{Data: []byte("hello"), Attributes: map[string]string{"k": "v"}}).Get(ctx)
	require.NoError(t, err)
	for _, sub := range []string{"projects/p1/subscriptions/watch", "projects/p2/subscriptions/other"} {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		var got *pubsub.Message
		err := client.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			got = m
			rcancel()
		})
		rcancel()
		require.NoError(t, err)
		require.NotNil(t, got, sub)
		assert.Equal(t, "hello", string(got.Data))
		assert.Equal(t, "v", got.Attributes["k"])
	}

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(5 * time.Second):
		t.Fatal("the emulator did not stop")
	}
	assert.Contains(t, out.String(), "pubsub-emulator: stopped\n")
}

func TestEmulatorRefusesBadFlags(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	_, busyPort, _ := net.SplitHostPort(busy.Addr().String())
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"argument":        {[]string{"extra"}, `unexpected argument "extra"`},
		"port":            {[]string{"--port", "70000"}, "--port 70000 is not a port"},
		"project":         {[]string{"--project", "Bad Project"}, `--project "Bad Project" is not a project ID`},
		"topic":           {[]string{"--topic", "x"}, `"x" is not a valid topic ID`},
		"full topic":      {[]string{"--topic", "projects/p/subscriptions/s"}, "is not projects/PROJECT/topics/NAME"},
		"which topic":     {[]string{"--topic", "aaa", "--topic", "bbb", "--subscription", "sss"}, "say which topic it is on"},
		"no topic":        {[]string{"--subscription", "sss"}, "there are 0 topics"},
		"port in use":     {[]string{"--port", busyPort}, "cannot listen on 127.0.0.1:" + busyPort},
		"duplicate topic": {[]string{"--port", "0", "--topic", "aaa", "--topic", "aaa"}, "creating topic projects/tamperguard-local/topics/aaa"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errOut syncBuffer
			code := run(context.Background(), append([]string{"--port", "0"}, c.args...), &out, &errOut)
			assert.Equal(t, 2, code)
			assert.Contains(t, errOut.String(), c.want)
			assert.NotContains(t, out.String(), "listening")
		})
	}
}

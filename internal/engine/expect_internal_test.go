package engine

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

// chunky hands out at most n bytes per Read, like a network body (no WriteTo).
type chunky struct {
	r io.Reader
	n int
}

func (c *chunky) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

func pattern(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// Every size, around the point where the reads move to their own goroutine and around the
// buffers' edges, hashes to the same digest as crypto/sha256.
func TestHashReaderPipelinedIsExact(t *testing.T) {
	data := pattern(pipelineAfter + (pipelineDepth+2)*pipeBufSize + 12345)
	for _, n := range []int{0, 1, hashBufSize - 1, hashBufSize, pipelineAfter - 1, pipelineAfter, pipelineAfter + 1,
		pipelineAfter + pipeBufSize - 1, pipelineAfter + pipeBufSize, pipelineAfter + pipelineDepth*pipeBufSize + 7, len(data)} {
		for _, chunk := range []int{1 << 10, 32 << 10, 1 << 20} {
			if n > 2*pipelineAfter && chunk == 1<<10 {
				continue
			}
			got, size, err := HashReader(&chunky{bytes.NewReader(data[:n]), chunk})
			require.NoError(t, err)
			assert.Equal(t, int64(n), size, "size %d, reads of %d", n, chunk)
			assert.Equal(t, checksum.Digest(sha256.Sum256(data[:n])), got, "size %d, reads of %d", n, chunk)
		}
	}
}

// A read that fails past the first MiB is the copy's error, not a digest of what came before.
func TestHashReaderPipelinedReadError(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(pattern(3*pipelineAfter)), iotest.ErrReader(boom))
	_, n, err := HashReader(&chunky{r, 32 << 10})
	require.ErrorIs(t, err, boom)
	assert.Equal(t, int64(3*pipelineAfter), n)
}

type panicky struct{ after int }

func (p *panicky) Read(b []byte) (int, error) {
	if p.after <= 0 {
		panic("store bug")
	}
	n := min(len(b), p.after)
	p.after -= n
	return n, nil
}

// A panic in the reading goroutine reaches the caller's goroutine, where the delivery
// runtime recovers it (a panic in another goroutine would end the process).
func TestHashReaderPipelinedPanicReachesTheCaller(t *testing.T) {
	assert.PanicsWithValue(t, "store bug", func() { _, _, _ = HashReader(&panicky{after: 2 * pipelineAfter}) })
}

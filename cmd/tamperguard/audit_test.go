package main

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// audit's flags: shards (--prefix), only what is not ok (--quiet), a run cut short and
// resumed (--limit), the memo sparing the reads of a second run, and bad values refused.
func TestAuditCommandShardsQuietAndResume(t *testing.T) {
	b := newBucketEnv(t)
	good := goodInstallSh(t)
	b.put("install.sh", good)
	for i := range 6 {
		b.put(fmt.Sprintf("dl/a%d.sh", i), good)
	}
	b.put("dl/b.sh", append(append([]byte(nil), good...), "echo pwned\n"...))

	code := b.run("audit", "--config", b.cfg, "--prefix", "dl/a", "--concurrency", "3")
	assert.Equal(t, exitOK, code, b.err.String())
	assert.Len(t, b.lines(), 6, "only the shard")
	assert.Contains(t, b.err.String(), "audited 6 objects: 6 ok (6 listed: 0 ok by the memo, 6 read)")

	code = b.run("audit", "--config", b.cfg, "--prefix", "dl/a", "--quiet")
	assert.Equal(t, exitOK, code, b.err.String())
	assert.Empty(t, b.lines(), "ok objects are only counted")
	assert.Contains(t, b.err.String(), "audited 6 objects: 6 ok (6 listed: 6 ok by the memo, 0 read)")

	code = b.run("audit", "--config", b.cfg, "--limit", "2", "--from-start")
	assert.Equal(t, exitError, code, "an audit cut short is not a clean bill")
	assert.Len(t, b.lines(), 2)
	assert.Contains(t, b.err.String(), `stopped in gs://uploader-prod/dl/* (pass 1) after "dl/a1.sh"; the next audit resumes there`)
	assert.Contains(t, b.err.String(), "(2 listed: 0 ok by the memo, 2 read)", "the memo is per listing prefix: dl/a's is not dl/'s")

	code = b.run("audit", "--config", b.cfg, "--quiet")
	assert.Equal(t, exitTampered, code, b.err.String())
	lines := b.lines()
	require.Len(t, lines, 1)
	assert.Equal(t, "dl/b.sh", lines[0].Object)

	for _, bad := range [][]string{{"--concurrency", "0"}, {"--limit", "-1"}, {"--prefix", "a\nb"}} {
		assert.Equal(t, exitError, b.run(append([]string{"audit", "--config", b.cfg}, bad...)...), bad)
	}
}

package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/config"
)

// The tag go-git signs with the throwaway key is a release tamperguard's own git source
// accepts, and the checksum file in its tree vouches for the script.
func TestReleaseVerifies(t *testing.T) {
	dir := t.TempDir()
	script := Script(0)
	rel, err := NewRelease(dir, "v1.0.0", ScriptName, script)
	require.NoError(t, err)

	cfg, err := config.Parse(config.Source{Name: "demo.yaml", Data: []byte(rel.Config("downloads", ScriptName, "state")), Dir: dir})
	require.NoError(t, err)
	m, ok := cfg.Policy.Match("downloads", ScriptName)
	require.True(t, ok)
	got, err := m.Rule.Source.Fetch(context.Background(), "v1.0.0")
	require.NoError(t, err)
	assert.Equal(t, "openpgp", got.Signer.Scheme)
	assert.Equal(t, rel.Fingerprint, strings.ToUpper(got.Signer.Fingerprint))
	e, err := got.Lookup(ScriptName)
	require.NoError(t, err)
	assert.Equal(t, rel.SHA256, e.Digest.String())
	sum := sha256.Sum256(script)
	assert.Equal(t, hex.EncodeToString(sum[:]), rel.SHA256)
}

func TestScriptAndTampered(t *testing.T) {
	s := Script(100 << 10)
	assert.GreaterOrEqual(t, len(s), 100<<10)
	assert.Less(t, len(s), 100<<10+200)
	assert.True(t, strings.HasPrefix(string(s), "#!/usr/bin/env bash\n"))
	bad := Tampered(s)
	assert.Equal(t, string(s)+InjectedLine, string(bad))
	assert.Contains(t, InjectedLine, "https://"+IndicatorHost+"/")
}

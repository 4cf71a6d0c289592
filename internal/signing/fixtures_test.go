package signing

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fixtures are made by testdata/gen.sh with the real tools; these tests
// only read them.
const testdataDir = "../../testdata"

// fixedNow is after every fixture signature (2025) and long after the
// expired key's end (2024-01-02).
var fixedNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func fixture(t testing.TB, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{testdataDir}, parts...)...))
	require.NoError(t, err)
	return b
}

func key(t testing.TB, name string) []byte { t.Helper(); return fixture(t, "keys", name) }

func release(t testing.TB, name string) []byte { t.Helper(); return fixture(t, "release", name) }

// fingerprint returns what gpg / ssh-keygen / sha256sum printed for a key
// file when gen.sh made it (testdata/keys/FINGERPRINTS).
func fingerprint(t testing.TB, file string) string {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(key(t, "FINGERPRINTS")))
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) == 3 && fields[0] == file {
			return fields[2]
		}
	}
	require.FailNow(t, "no fingerprint recorded", file)
	return ""
}

// pinnedKeys is the configuration most tests use: the maintainers' keys of
// every scheme, plus the expired key (which loads, and is refused at use).
func pinnedKeys(t testing.TB) *Keys {
	t.Helper()
	k, err := NewKeys(
		[][]byte{key(t, "maintainer-ed25519.asc"), key(t, "maintainer-rsa3072.asc"), key(t, "expired-ed25519.asc")},
		[][]byte{key(t, "release_ed25519.pub"), key(t, "ssh_rsa3072.pub")},
		[][]byte{key(t, "cosign.pub")},
		Options{Now: func() time.Time { return fixedNow }},
	)
	require.NoError(t, err)
	require.False(t, k.Empty())
	return k
}

// assertRefused checks a refusal: the finer reason, ErrRefused, and an error
// message short enough that no large input was echoed.
func assertRefused(t *testing.T, err error, reason error) {
	t.Helper()
	if !assert.Error(t, err) {
		return
	}
	assert.ErrorIs(t, err, reason)
	assert.ErrorIs(t, err, ErrRefused)
	assert.Less(t, len(err.Error()), 400, "error message too long: %q", err.Error())
}

func TestFixturesFingerprintsRecorded(t *testing.T) {
	for _, f := range []string{
		"maintainer-ed25519.asc", "maintainer-rsa3072.asc", "other-ed25519.asc", "rsa1024.asc",
		"expired-ed25519.asc", "revoked-ed25519.asc", "nosign-ed25519.asc",
		"release_ed25519.pub", "other_ssh_ed25519.pub", "ssh_rsa3072.pub", "ssh_rsa1024.pub", "cosign.pub",
	} {
		fp := fingerprint(t, f)
		assert.NotEmpty(t, fp, f)
	}
}

func TestSentinelsMatchErrRefused(t *testing.T) {
	for _, e := range []error{ErrUnknownKey, ErrBadSignature, ErrWeakAlgorithm, ErrKeyExpired, ErrSignatureExpired,
		ErrKeyRevoked, ErrMalformed, ErrNoSignature, ErrWrongNamespace, ErrKeyNotYetValid, ErrPrincipalMismatch,
		ErrCertificate, ErrSecurityKeyFlags} {
		assert.ErrorIs(t, e, ErrRefused, e.Error())
	}
	assert.NotErrorIs(t, ErrUnknownKey, ErrBadSignature)
	assert.False(t, errors.Is(ErrPrivateKey, ErrRefused))
}

package signing

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

func clearsignKeys(t testing.TB) *Keys {
	t.Helper()
	k, err := NewKeys([][]byte{fixture(t, "clearsigned", "clearsign-ed25519.asc")}, nil, nil, Options{Now: func() time.Time { return fixedNow }})
	require.NoError(t, err)
	return k
}

func TestClearsignedChecksumFile(t *testing.T) {
	k := clearsignKeys(t)
	want := bytes.TrimSuffix(release(t, "SHA256SUMS"), []byte("\n"))
	for _, name := range []string{"SHA256SUMS.asc", "SHA256SUMS.sha512.asc"} {
		t.Run(name, func(t *testing.T) {
			data := fixture(t, "clearsigned", name)
			text, v, err := k.VerifyClearsigned(data)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(text), "the signed text, without the final newline the signature does not cover")
			assert.Equal(t, string(bytes.TrimSpace(fixture(t, "clearsigned", "FINGERPRINT"))), v.Signer.Fingerprint)
			assert.Equal(t, time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), v.Time)
			f, err := checksum.Parse(text)
			require.NoError(t, err)
			assert.Equal(t, 2, f.Len())

			// CRLF line endings (a file that went through a Windows editor) verify the same.
			crlf := bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
			text2, _, err := k.VerifyClearsigned(crlf)
			require.NoError(t, err)
			assert.Equal(t, text, text2)
		})
	}
}

// gpg dash-escapes lines starting with "-", and a clearsigned signature does not
// cover trailing whitespace: the text returned is what gpg itself outputs, less
// the trailing whitespace nobody signed.
func TestClearsignedDashEscapingAndWhitespace(t *testing.T) {
	k := clearsignKeys(t)
	data := fixture(t, "clearsigned", "notes.txt.asc")
	require.Contains(t, string(data), "\n- - a line starting with a dash\n", "gpg dash-escaped the line")

	text, _, err := k.VerifyClearsigned(data)
	require.NoError(t, err)
	gpgSays := fixture(t, "clearsigned", "notes.txt.gpg-output")
	var trimmed [][]byte
	for _, l := range bytes.Split(bytes.TrimSuffix(gpgSays, []byte("\n")), []byte("\n")) {
		trimmed = append(trimmed, bytes.TrimRight(l, " \t"))
	}
	assert.Equal(t, string(bytes.Join(trimmed, []byte("\n"))), string(text))
	assert.Contains(t, string(text), "\n-----BEGIN PGP SIGNATURE----- (not really)\n", "an escaped armor line is text, not the signature")

	// Whitespace added at line ends after signing changes nothing, and is not returned.
	padded := bytes.Replace(data, []byte("\nplain\n"), []byte("\nplain  \t\n"), 1)
	require.NotEqual(t, data, padded)
	text2, _, err := k.VerifyClearsigned(padded)
	require.NoError(t, err)
	assert.Equal(t, text, text2)

	// Removing the dash escape changes the text: refused.
	unescaped := bytes.Replace(data, []byte("\n- - a line"), []byte("\n- a line"), 1)
	_, _, err = k.VerifyClearsigned(unescaped)
	assertRefused(t, err, ErrBadSignature)
}

// A clearsigned message is signed in text mode (RFC 4880 7.1). A binary-mode
// signature by the pinned key, over exactly the bytes the frame hashes, is still
// refused: the frame is not what the signer made.
func TestClearsignedBinarySignatureRefused(t *testing.T) {
	k := clearsignKeys(t)
	line := fixture(t, "clearsigned", "oneline.txt")
	sig := fixture(t, "clearsigned", "oneline.txt.binary.asc")
	_, err := k.Verify(line, sig)
	require.NoError(t, err, "the detached signature itself is good")

	framed := append([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"), line...)
	framed = append(append(framed, '\n'), sig...)
	_, _, err = k.VerifyClearsigned(framed)
	assertRefused(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "not a text signature")
}

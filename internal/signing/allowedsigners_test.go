package signing

import (
	"bufio"
	"bytes"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func sshFixture(t testing.TB, parts ...string) []byte {
	t.Helper()
	return fixture(t, append([]string{"ssh"}, parts...)...)
}

var reasons = map[string]error{
	"ErrWrongNamespace": ErrWrongNamespace, "ErrKeyExpired": ErrKeyExpired, "ErrKeyNotYetValid": ErrKeyNotYetValid,
	"ErrUnknownKey": ErrUnknownKey, "ErrPrincipalMismatch": ErrPrincipalMismatch, "ErrCertificate": ErrCertificate,
}

// TestAllowedSignersAgreeWithOpenSSH replays every case of testdata/ssh/CASES.tsv: for
// each, gen-signing.sh recorded what ssh-keygen -Y verify (detached signatures, at the
// given verify-time) or git verify-tag (tags, at the tagger date) decided. tamperguard
// must decide the same, and say why when it refuses.
func TestAllowedSignersAgreeWithOpenSSH(t *testing.T) {
	sc := bufio.NewScanner(bytes.NewReader(sshFixture(t, "CASES.tsv")))
	n := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		f := strings.Split(sc.Text(), "\t")
		require.Len(t, f, 8, sc.Text())
		name, kind, sigFile, asFile, verifyTime, verdict, reason := f[0], f[1], f[2], f[3], f[5], f[6], f[7]
		n++
		t.Run(name, func(t *testing.T) {
			now := fixedNow
			if kind == "detached" {
				var err error
				now, err = parseSSHTime(verifyTime)
				require.NoError(t, err)
			}
			k, err := NewKeys(nil, [][]byte{sshFixture(t, "allowed_signers", asFile)}, nil, Options{Now: func() time.Time { return now }})
			require.NoError(t, err)
			var signer Signer
			if kind == "tag" {
				payload, sig := splitRawTag(t, sshFixture(t, sigFile))
				signer, err = k.VerifyGitTag(payload, sig)
			} else {
				signer, err = k.VerifyDetached(sshFixture(t, "SHA256SUMS"), sshFixture(t, sigFile))
			}
			if verdict == "good" {
				require.NoError(t, err)
				assert.Equal(t, "ssh", signer.Scheme)
				return
			}
			want, ok := reasons[reason]
			require.True(t, ok, "reason %q", reason)
			assertRefused(t, err, want)
		})
	}
	require.NoError(t, sc.Err())
	assert.GreaterOrEqual(t, n, 30)
}

func TestAllowedSignersFileWithEveryForm(t *testing.T) {
	k, err := NewKeys(nil, [][]byte{sshFixture(t, "allowed_signers", "all")}, nil, Options{Now: func() time.Time { return time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC) }})
	require.NoError(t, err)
	require.Len(t, k.Signers(), 4)
	msg := sshFixture(t, "SHA256SUMS")

	signer, err := k.VerifyDetached(msg, sshFixture(t, "SHA256SUMS.ed25519.sig"))
	require.NoError(t, err)
	assert.Equal(t, Signer{Scheme: "ssh", Fingerprint: sshFingerprint(t, "signer_ed25519.pub"), Identity: "release@example.org"}, signer)

	// The custom namespace is accepted through the second line of the same key.
	signer, err = k.VerifyDetached(msg, sshFixture(t, "SHA256SUMS.runitor.sig"))
	require.NoError(t, err)
	assert.Equal(t, "Runitor release", signer.Identity)

	signer, err = k.VerifyDetached(msg, sshFixture(t, "SHA256SUMS.ecdsa.sig"))
	require.NoError(t, err)
	assert.Equal(t, sshFingerprint(t, "signer_ecdsa.pub"), signer.Fingerprint)

	// A certificate: the Signer is the pinned CA; the identity names the certificate.
	signer, err = k.VerifyDetached(msg, sshFixture(t, "SHA256SUMS.cert.sig"))
	require.NoError(t, err)
	assert.Equal(t, sshFingerprint(t, "ca_ed25519.pub"), signer.Fingerprint)
	assert.Equal(t, `release@example.org (certificate "release-2025H1", key `+sshFingerprint(t, "certified_ed25519.pub")+")", signer.Identity)

	payload, sig := splitRawTag(t, sshFixture(t, "tags", "v2.0.0.tag"))
	_, err = k.VerifyGitTag(payload, sig)
	require.NoError(t, err)
	// The CA line allows namespace "file" only.
	payload, sig = splitRawTag(t, sshFixture(t, "tags", "v2.1.0.tag"))
	_, err = k.VerifyGitTag(payload, sig)
	assertRefused(t, err, ErrWrongNamespace)

	// In 2026 the ECDSA key has been retired (valid-before="20251231Z").
	later, err := NewKeys(nil, [][]byte{sshFixture(t, "allowed_signers", "all")}, nil, Options{Now: func() time.Time { return fixedNow }})
	require.NoError(t, err)
	_, err = later.VerifyDetached(msg, sshFixture(t, "SHA256SUMS.ecdsa.sig"))
	assertRefused(t, err, ErrKeyExpired)
}

func sshFingerprint(t testing.TB, file string) string {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(sshFixture(t, "FINGERPRINTS")))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) == 3 && f[0] == file {
			return f[2]
		}
	}
	require.FailNow(t, "no fingerprint recorded", file)
	return ""
}

// The messages say what was refused and why, and never call a good signature altered.
func TestAllowedSignersRefusalMessages(t *testing.T) {
	msg := sshFixture(t, "SHA256SUMS")
	signer := strings.TrimSpace(string(sshFixture(t, "signer_ed25519.pub")))
	fp := sshFingerprint(t, "signer_ed25519.pub")
	payload, tagSig := splitRawTag(t, sshFixture(t, "tags", "v2.0.0.tag"))

	k := keysAt(t, fixedNow, `release@example.org valid-before="20241206" `+signer)
	_, err := k.VerifyDetached(msg, sshFixture(t, "SHA256SUMS.ed25519.sig"))
	assertRefused(t, err, ErrKeyExpired)
	assert.Contains(t, err.Error(), `key `+fp+` expired per valid-before="20241206" (verified 2026-01-01T00:00:00Z; a detached signature is judged at the current time)`)
	assert.NotContains(t, err.Error(), "does not match")

	k = keysAt(t, fixedNow, `release@example.org valid-before="20250201" `+signer)
	_, err = k.VerifyGitTag(payload, tagSig)
	assertRefused(t, err, ErrKeyExpired)
	assert.Contains(t, err.Error(), `key `+fp+` expired per valid-before="20250201" (signed 2025-03-01T12:00:00Z per the tagger date)`)

	k = keysAt(t, fixedNow, `release@example.org valid-after="20250401" `+signer)
	_, err = k.VerifyGitTag(payload, tagSig)
	assertRefused(t, err, ErrKeyNotYetValid)
	assert.Contains(t, err.Error(), `not yet valid per valid-after="20250401" (signed 2025-03-01T12:00:00Z`)

	k = keysAt(t, fixedNow, `release@example.org namespaces="git" `+signer)
	_, err = k.VerifyDetached(msg, sshFixture(t, "SHA256SUMS.ed25519.sig"))
	assertRefused(t, err, ErrWrongNamespace)
	assert.Contains(t, err.Error(), `namespace is "file", but key `+fp+` is pinned with namespaces="git"`)

	ca := strings.TrimSpace(string(sshFixture(t, "ca_ed25519.pub")))
	k = keysAt(t, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), `*@other.example.org cert-authority `+ca)
	_, err = k.VerifyDetached(msg, sshFixture(t, "SHA256SUMS.cert.sig"))
	assertRefused(t, err, ErrPrincipalMismatch)
	assert.Contains(t, err.Error(), `"release-2025H1"`)
	assert.Contains(t, err.Error(), `"release@example.org", which the pinned principals "*@other.example.org" do not cover`)

	k = keysAt(t, fixedNow, `*@example.org cert-authority `+ca)
	_, err = k.VerifyDetached(msg, sshFixture(t, "SHA256SUMS.cert.sig"))
	assertRefused(t, err, ErrKeyExpired)
	assert.Contains(t, err.Error(), "expired on 2025-07-01T00:00:00Z")

	// Altered content is still "does not match", whatever the entry's options.
	_, err = k.VerifyDetached(append([]byte("x"), msg...), sshFixture(t, "SHA256SUMS.cert.sig"))
	assertRefused(t, err, ErrBadSignature)
}

func keysAt(t testing.TB, now time.Time, lines ...string) *Keys {
	t.Helper()
	k, err := NewKeys(nil, [][]byte{[]byte(strings.Join(lines, "\n"))}, nil, Options{Now: func() time.Time { return now }})
	require.NoError(t, err)
	return k
}

// A detached signature carries no date, so time-bounded entries are judged at the
// current time; a tag is judged at its tagger date, but a tag dated in the future
// cannot use that to slip past valid-after.
func TestSSHTagDatedInTheFuture(t *testing.T) {
	signer := strings.TrimSpace(string(sshFixture(t, "signer_ed25519.pub")))
	payload, sig := splitRawTag(t, sshFixture(t, "tags", "v2.0.0.tag"))
	early := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC) // before the tag's date (2025-03-01)

	_, err := keysAt(t, early, `release@example.org valid-after="20250201" `+signer).VerifyGitTag(payload, sig)
	assertRefused(t, err, ErrBadSignature)
	assert.Contains(t, err.Error(), "in the future")

	// Without a time bound the tagger date does not matter.
	_, err = keysAt(t, early, `release@example.org `+signer).VerifyGitTag(payload, sig)
	assert.NoError(t, err)
}

func TestTaggerTime(t *testing.T) {
	for name, c := range map[string]struct {
		payload string
		want    time.Time
		ok      bool
	}{
		"real":          {"object 53a8\ntype commit\ntag V_9_9_P1\ntagger Damien Miller <djm@mindrot.org> 1726784698 +1000\n\nopenssh-9.9p1\n", time.Unix(1726784698, 0), true},
		"odd name":      {"tagger A <b> c <d@e> 100 +0000\n\n", time.Unix(100, 0), true},
		"in message":    {"object x\n\ntagger A <a@b> 100 +0000\n", time.Time{}, false},
		"no tagger":     {"object x\ntype commit\n\nmsg\n", time.Time{}, false},
		"garbage time":  {"tagger A <a@b> soon +0000\n\n", time.Time{}, false},
		"negative":      {"tagger A <a@b> -5 +0000\n\n", time.Time{}, false},
		"huge":          {"tagger A <a@b> 99999999999999999 +0000\n\n", time.Time{}, false},
		"no email":      {"tagger A 100 +0000\n\n", time.Time{}, false},
		"missing zone":  {"tagger A <a@b> 100\n\n", time.Time{}, false},
		"empty payload": {"", time.Time{}, false},
	} {
		t.Run(name, func(t *testing.T) {
			got, ok := taggerTime([]byte(c.payload))
			assert.Equal(t, c.ok, ok)
			if c.ok {
				assert.True(t, c.want.Equal(got), "%v != %v", c.want, got)
			}
		})
	}
}

func TestAllowedSignersLineErrors(t *testing.T) {
	key := strings.TrimSpace(string(sshFixture(t, "signer_ed25519.pub")))
	keyOnly := strings.Join(strings.Fields(key)[:2], " ")
	ecdsa := strings.TrimSpace(string(sshFixture(t, "signer_ecdsa.pub")))
	cert := strings.TrimSpace(string(sshFixture(t, "certified_ed25519-cert.pub")))
	for name, c := range map[string]struct{ line, want string }{
		"unknown option":           {`release@example.org valid-befor="20241206" ` + keyOnly, `unknown option "valid-befor"`},
		"typo without principals":  {`valid-befor="20241206" ` + keyOnly, `unknown option "valid-befor"`},
		"unquoted value":           {`release@example.org valid-before=20241206 ` + keyOnly, `needs a quoted value`},
		"bad date":                 {`release@example.org valid-before="2024-12-06" ` + keyOnly, `is not YYYYMMDD`},
		"bad month":                {`release@example.org valid-before="20241306" ` + keyOnly, `is not YYYYMMDD`},
		"window backwards":         {`release@example.org valid-after="20250101",valid-before="20240101" ` + keyOnly, `is not after valid-after`},
		"twice":                    {`release@example.org namespaces="file",namespaces="git" ` + keyOnly, `given twice`},
		"flag with value":          {`release@example.org cert-authority="yes" ` + keyOnly, `takes no value`},
		"empty namespaces":         {`release@example.org namespaces="" ` + keyOnly, `empty`},
		"unterminated quote":       {`release@example.org namespaces="file ` + keyOnly, `unterminated quote`},
		"login option with princ.": {`release@example.org no-pty ` + keyOnly, `unknown option "no-pty"`},
		"ca without principals":    {`cert-authority ` + keyOnly, `needs the principals`},
		"certificate pinned":       {`release@example.org ` + cert, `certificates are not pinned`},
		"no key":                   {`release@example.org namespaces="file"`, `no SSH public key`},
		"type mismatch":            {`release@example.org ssh-rsa ` + strings.Fields(key)[1], `the line says ssh-rsa`},
		"bad base64":               {`release@example.org ssh-ed25519 AAAA!!!`, `not valid base64`},
		"verify-required non-sk":   {`release@example.org verify-required ` + keyOnly, `security keys`},
		"empty option":             {`release@example.org namespaces="file",,valid-before="20300101" ` + keyOnly, `empty option`},
		"quoted principals bad":    {`"release@example.org ` + keyOnly, `unterminated quote`},
		"quote in principals":      {`rel"ease"@example.org ` + ecdsa, `badly quoted principals`},
		"control char principals":  {"rel\x01ease@example.org " + keyOnly, `unprintable`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewKeys(nil, [][]byte{[]byte("# first line is a comment\n" + c.line)}, nil, Options{})
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidKey)
			assert.Contains(t, err.Error(), "line 2: ")
			assert.Contains(t, err.Error(), c.want)
			assert.Less(t, len(err.Error()), 400)
		})
	}
}

func TestAllowedSignersLineForms(t *testing.T) {
	key := strings.TrimSpace(string(sshFixture(t, "signer_ed25519.pub")))
	keyOnly := strings.Join(strings.Fields(key)[:2], " ")
	for name, c := range map[string]struct {
		line       string
		principals string
		identity   string
		check      func(t *testing.T, o sshOptions)
	}{
		"plain key":          {key, "", "release@example.org TEST-ONLY", nil},
		"plain key, no note": {keyOnly, "", "", nil},
		"principal":          {"release@example.org " + keyOnly, "release@example.org", "release@example.org", nil},
		"principals list":    {"a@example.org,*@b.example.org " + key, "a@example.org,*@b.example.org", "a@example.org,*@b.example.org", nil},
		"quoted principal":   {`"principal with number 3" ` + keyOnly, "principal with number 3", "principal with number 3", nil},
		"options": {`r@e namespaces="file,git",VALID-AFTER="20250101Z" ` + keyOnly, "r@e", "r@e", func(t *testing.T, o sshOptions) {
			assert.True(t, o.hasNamespaces)
			assert.Equal(t, "file,git", o.namespaces)
			assert.Equal(t, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), o.validAfter)
		}},
		"space in namespace": {`r@e namespaces="bdd.fi/x/runitor release" ` + keyOnly, "r@e", "r@e", func(t *testing.T, o sshOptions) { assert.Equal(t, "bdd.fi/x/runitor release", o.namespaces) }},
		"authorized_keys":    {`restrict,no-pty,expiry-time="20300101" ` + key, "", "release@example.org TEST-ONLY", func(t *testing.T, o sshOptions) { assert.Equal(t, "20300101", o.expiresText) }},
		"options only": {`valid-before="20300101UTC" ` + keyOnly, "", "", func(t *testing.T, o sshOptions) {
			assert.Equal(t, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), o.validBefore)
		}},
		"time with seconds": {`r@e valid-before="20300101123456" ` + keyOnly, "r@e", "r@e", func(t *testing.T, o sshOptions) {
			assert.Equal(t, time.Date(2030, 1, 1, 12, 34, 56, 0, time.UTC), o.validBefore)
		}},
		"tabs": {"r@e\tnamespaces=\"file\"\t" + keyOnly, "r@e", "r@e", nil},
	} {
		t.Run(name, func(t *testing.T) {
			k, err := NewKeys(nil, [][]byte{[]byte(c.line)}, nil, Options{})
			require.NoError(t, err)
			require.Len(t, k.ssh, 1)
			assert.Equal(t, c.principals, k.ssh[0].line.principals)
			assert.Equal(t, c.identity, k.ssh[0].signer.Identity)
			if c.check != nil {
				c.check(t, k.ssh[0].line.opts)
			}
		})
	}
}

func TestMatchPattern(t *testing.T) {
	for _, c := range []struct {
		s, p string
		want bool
	}{
		{"release@example.org", "*@example.org", true},
		{"release@example.org", "release@example.org", true},
		{"release@example.org", "Release@example.org", false},
		{"release@example.org", "rel?ase@*", true},
		{"release@example.org", "*", true},
		{"", "*", true},
		{"", "", true},
		{"a", "", false},
		{"bdd.fi/x/runitor release", "bdd.fi/x/*", true},
		{"abc", "a*b*c*", true},
		{"abd", "a*c", false},
		{strings.Repeat("a", 5000), strings.Repeat("*a", 2000) + "b", false},
	} {
		assert.Equal(t, c.want, matchPattern(c.s, c.p), "%q ~ %q", c.s, c.p)
	}
	assert.Equal(t, 1, matchPatternList("a@x", "b@x,*@x"))
	assert.Equal(t, -1, matchPatternList("a@x", "*@x,!a@x"))
	assert.Equal(t, -1, matchPatternList("a@x", "!a@x,*@x"))
	assert.Equal(t, 0, matchPatternList("a@x", "b@x"))
	assert.Equal(t, 0, matchPatternList("a@x", "!b@x"))
}

// An attacker edits a genuine certificate (say, to widen its principals or extend its
// validity): the message signature by the certified key still verifies, but the CA's
// signature over the certificate no longer does. Nothing inside the edited
// certificate may be believed, so the refusal is about that signature.
func TestSSHCertificateAlteredAfterIssue(t *testing.T) {
	ca := strings.TrimSpace(string(sshFixture(t, "ca_ed25519.pub")))
	k := keysAt(t, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), `*@example.org cert-authority `+ca)
	msg := sshFixture(t, "SHA256SUMS")
	genuine := sshBlob(t, sshFixture(t, "SHA256SUMS.cert.sig"))
	_, err := k.VerifyDetached(msg, sshFixture(t, "SHA256SUMS.cert.sig"))
	require.NoError(t, err)

	for name, edit := range map[string]func(c *ssh.Certificate){
		"principals widened": func(c *ssh.Certificate) { c.ValidPrincipals = []string{"release@example.org", "admin@example.org"} },
		"validity extended":  func(c *ssh.Certificate) { c.ValidBefore = ssh.CertTimeInfinity },
		"made a host cert":   func(c *ssh.Certificate) { c.CertType = ssh.HostCert },
	} {
		t.Run(name, func(t *testing.T) {
			parsed, err := parseSSHSig(genuine)
			require.NoError(t, err)
			cert := parsed.pub.(*ssh.Certificate)
			edit(cert)
			blob := append([]byte(sshsigMagic), ssh.Marshal(struct {
				Version   uint32
				PublicKey []byte
				Namespace string
				Reserved  []byte
				HashAlg   string
				Signature []byte
			}{1, cert.Marshal(), parsed.namespace, nil, parsed.hashAlg, ssh.Marshal(parsed.sig)})...)
			armored := pem.EncodeToMemory(&pem.Block{Type: "SSH SIGNATURE", Bytes: blob})

			_, err = k.VerifyDetached(msg, armored)
			assertRefused(t, err, ErrBadSignature)
			assert.Contains(t, err.Error(), "but its signature does not verify")
		})
	}
}

// verify-required on a CA entry refuses a certificate for a software key: nothing
// vouches for user verification there.
func TestSSHVerifyRequiredRefusesSoftwareKeys(t *testing.T) {
	ca := strings.TrimSpace(string(sshFixture(t, "ca_ed25519.pub")))
	k := keysAt(t, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), `*@example.org cert-authority,verify-required `+ca)
	_, err := k.VerifyDetached(sshFixture(t, "SHA256SUMS"), sshFixture(t, "SHA256SUMS.cert.sig"))
	assertRefused(t, err, ErrSecurityKeyFlags)
	assert.Contains(t, err.Error(), "not a security key")
}

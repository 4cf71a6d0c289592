package release

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hiddeco/sshsig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// webFixture reads a file made by the real tools from the repository's testdata.
func webFixture(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", dir, name))
	require.NoError(t, err)
	return b
}

// webKeys are the maintainers' pinned keys (every scheme).
func webKeys(t *testing.T) *signing.Keys {
	t.Helper()
	k, err := signing.NewKeys(
		[][]byte{webFixture(t, "keys", "maintainer-ed25519.asc"), webFixture(t, "keys", "maintainer-rsa3072.asc")},
		[][]byte{webFixture(t, "keys", "release_ed25519.pub")},
		[][]byte{webFixture(t, "keys", "cosign.pub")},
		signing.Options{})
	require.NoError(t, err)
	return k
}

// webOtherKeys pins only a key that did not sign the fixtures.
func webOtherKeys(t *testing.T) *signing.Keys {
	t.Helper()
	k, err := signing.NewKeys([][]byte{webFixture(t, "keys", "other-ed25519.asc")}, nil, nil, signing.Options{})
	require.NoError(t, err)
	return k
}

// webSSHSigned signs message with a fresh SSH key as `ssh-keygen -Y sign -n file` does and
// returns keys that pin it, with the armored signature.
func webSSHSigned(t *testing.T, message []byte) (*signing.Keys, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	sig, err := sshsig.Sign(bytes.NewReader(message), signer, sshsig.HashSHA512, "file")
	require.NoError(t, err)
	keys, err := signing.NewKeys(nil, [][]byte{ssh.MarshalAuthorizedKey(signer.PublicKey())}, nil, signing.Options{})
	require.NoError(t, err)
	return keys, sshsig.Armor(sig)
}

func webSHA(b []byte) checksum.Digest { return sha256.Sum256(b) }

// webHost is a release host: files by escaped path, with statuses and redirects to override.
type webHost struct {
	srv *httptest.Server

	mu       sync.Mutex
	files    map[string][]byte
	status   map[string]int
	redirect map[string]string
	header   map[string]http.Header
	reqs     []*http.Request
}

func newWebHost(t *testing.T, tls bool) *webHost {
	h := &webHost{files: map[string][]byte{}, status: map[string]int{}, redirect: map[string]string{}, header: map[string]http.Header{}}
	h.srv = httptest.NewUnstartedServer(h)
	h.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	if tls {
		h.srv.StartTLS()
	} else {
		h.srv.Start()
	}
	t.Cleanup(h.srv.Close)
	return h
}

func (h *webHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	h.mu.Lock()
	h.reqs = append(h.reqs, r.Clone(context.Background()))
	body, ok := h.files[p]
	status, hasStatus := h.status[p]
	loc := h.redirect[p]
	hdr := h.header[p]
	h.mu.Unlock()
	for k, v := range hdr {
		w.Header()[k] = v
	}
	switch {
	case hasStatus:
		w.WriteHeader(status)
	case loc != "":
		http.Redirect(w, r, loc, http.StatusFound)
	case ok:
		_, _ = w.Write(body)
	default:
		http.NotFound(w, r)
	}
}

func (h *webHost) put(path string, body []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[path] = body
}

func (h *webHost) setStatus(path string, status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status[path] = status
}

func (h *webHost) setRedirect(path, to string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.redirect[path] = to
}

func (h *webHost) setHeader(path string, hdr http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.header[path] = hdr
}

func (h *webHost) requests() []*http.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*http.Request(nil), h.reqs...)
}

func (h *webHost) paths() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ps []string
	for _, r := range h.reqs {
		p := r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			p += "?" + r.URL.RawQuery
		}
		ps = append(ps, p)
	}
	return ps
}

// putRelease serves the fixture release under /dl/{tag}/.
func (h *webHost) putRelease(t *testing.T, tag string) {
	for _, n := range []string{"SHA256SUMS", "install.sh", "codecov"} {
		h.put("/dl/"+tag+"/"+n, webFixture(t, "release", n))
	}
}

func newURLSource(t *testing.T, opts URLOptions) *URLSource {
	t.Helper()
	s, err := NewURL(opts)
	require.NoError(t, err)
	return s
}

func webReadAll(t *testing.T, r io.ReadCloser) []byte {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return b
}

func TestURLGoodRelease(t *testing.T) {
	// gen.sh makes every OpenPGP signature at this instant; SSH and cosign signatures carry none.
	signedAt := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		sigPath   string // where the host serves the signature
		sigFile   string // fixture
		signature string // Signature template ("" = default .asc then .sig)
		want      []string
		signed    time.Time
	}{
		{name: "openpgp ed25519 .asc", sigPath: "SHA256SUMS.asc", sigFile: "SHA256SUMS.asc", signed: signedAt,
			want: []string{"/dl/v1.2.0/SHA256SUMS", "/dl/v1.2.0/SHA256SUMS.asc"}},
		{name: "openpgp rsa via template", sigPath: "SHA256SUMS.rsa.sig", sigFile: "SHA256SUMS.rsa.sig", signature: "/dl/{tag}/SHA256SUMS.rsa.sig", signed: signedAt,
			want: []string{"/dl/v1.2.0/SHA256SUMS", "/dl/v1.2.0/SHA256SUMS.rsa.sig"}},
		{name: "ssh .sig after .asc 404", sigPath: "SHA256SUMS.sig", sigFile: "SHA256SUMS.ssh.sig",
			want: []string{"/dl/v1.2.0/SHA256SUMS", "/dl/v1.2.0/SHA256SUMS.asc", "/dl/v1.2.0/SHA256SUMS.sig"}},
		{name: "cosign via template", sigPath: "SHA256SUMS.cosign.sig", sigFile: "SHA256SUMS.cosign.sig", signature: "/dl/{tag}/SHA256SUMS.cosign.sig",
			want: []string{"/dl/v1.2.0/SHA256SUMS", "/dl/v1.2.0/SHA256SUMS.cosign.sig"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newWebHost(t, false)
			h.putRelease(t, "v1.2.0")
			h.put("/dl/v1.2.0/"+tc.sigPath, webFixture(t, "release", tc.sigFile))
			opts := URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)}
			if tc.signature != "" {
				opts.Signature = h.srv.URL + tc.signature
			}
			src := newURLSource(t, opts)

			rel, err := src.Fetch(t.Context(), "v1.2.0")
			require.NoError(t, err)
			assert.Equal(t, tc.want, h.paths())
			assert.Equal(t, "url "+h.srv.URL+"/dl/v1.2.0/SHA256SUMS", rel.Source)
			assert.Equal(t, "v1.2.0", rel.Tag)
			assert.Equal(t, "SHA256SUMS", rel.ChecksumsName)
			assert.Equal(t, tc.signed, rel.Time, "the signature's own time, or none")
			assert.Equal(t, "", rel.Version, "no version in the signed file names")
			require.NotNil(t, rel.Evidence)
			assert.Equal(t, webFixture(t, "release", "SHA256SUMS"), rel.Evidence.Checksums)
			assert.NotEmpty(t, rel.Signer)
			for _, n := range []string{"install.sh", "codecov"} {
				e, err := rel.Lookup(n)
				require.NoError(t, err)
				assert.Equal(t, webSHA(webFixture(t, "release", n)), e.Digest, n)
			}
			body, err := rel.Open(t.Context(), "install.sh")
			require.NoError(t, err)
			assert.Equal(t, webFixture(t, "release", "install.sh"), webReadAll(t, body))
		})
	}
}

func TestURLOverTLS(t *testing.T) {
	h := newWebHost(t, true)
	h.putRelease(t, "v1.2.0")
	h.put("/dl/v1.2.0/SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.asc"))
	src := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t), Client: h.srv.Client()})

	rel, err := src.Fetch(t.Context(), "v1.2.0")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(rel.Source, "url https://127.0.0.1:"), rel.Source)
	body, err := rel.Open(t.Context(), "codecov")
	require.NoError(t, err)
	assert.Equal(t, webFixture(t, "release", "codecov"), webReadAll(t, body))

	// The default client does not trust the test certificate.
	src = newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)})
	_, err = src.Fetch(t.Context(), "v1.2.0")
	assert.ErrorIs(t, err, ErrUnreachable)
}

func TestURLRefused(t *testing.T) {
	t.Run("tampered checksum file", func(t *testing.T) {
		h := newWebHost(t, false)
		h.put("/dl/v1/SHA256SUMS", webFixture(t, "release", "SHA256SUMS.tampered"))
		h.put("/dl/v1/SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.asc"))
		_, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, signing.ErrRefused)
		assert.True(t, Refused(err))
		assert.ErrorContains(t, err, h.srv.URL+"/dl/v1/SHA256SUMS")
	})
	t.Run("key not pinned", func(t *testing.T) {
		h := newWebHost(t, false)
		h.putRelease(t, "v1")
		h.put("/dl/v1/SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.asc"))
		_, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webOtherKeys(t)}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, signing.ErrRefused)
	})
	t.Run("signed by another key", func(t *testing.T) {
		h := newWebHost(t, false)
		h.putRelease(t, "v1")
		h.put("/dl/v1/SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.other.asc"))
		_, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, signing.ErrRefused)
	})
	t.Run("no signature", func(t *testing.T) {
		h := newWebHost(t, false)
		h.putRelease(t, "v1")
		_, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, ErrUnsigned)
		assert.True(t, Refused(err))
		assert.ErrorContains(t, err, "SHA256SUMS.asc or ")
	})
	t.Run("signed but not a checksum file", func(t *testing.T) {
		h := newWebHost(t, false)
		garbage := []byte("this is not\na checksum file\n")
		keys, sig := webSSHSigned(t, garbage)
		h.put("/dl/v1/SHA256SUMS", garbage)
		h.put("/dl/v1/SHA256SUMS.sig", sig)
		_, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: keys}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.ErrorIs(t, err, checksum.ErrMalformed)
	})
}

func TestURLStatusMapping(t *testing.T) {
	cases := []struct {
		path   string // which file answers with status
		status int
		header http.Header
		want   error
	}{
		{"/dl/v1/SHA256SUMS", http.StatusNotFound, nil, ErrNotFound},
		{"/dl/v1/SHA256SUMS", http.StatusGone, nil, ErrNotFound},
		{"/dl/v1/SHA256SUMS", http.StatusInternalServerError, nil, ErrUnreachable},
		{"/dl/v1/SHA256SUMS", http.StatusBadGateway, nil, ErrUnreachable},
		{"/dl/v1/SHA256SUMS", http.StatusTooManyRequests, nil, ErrUnreachable},
		{"/dl/v1/SHA256SUMS", http.StatusForbidden, nil, ErrInvalid},
		{"/dl/v1/SHA256SUMS", http.StatusUnauthorized, nil, ErrInvalid},
		{"/dl/v1/SHA256SUMS", http.StatusNoContent, nil, ErrInvalid},
		{"/dl/v1/SHA256SUMS.asc", http.StatusServiceUnavailable, nil, ErrUnreachable},
		{"/dl/v1/SHA256SUMS.asc", http.StatusForbidden, nil, ErrInvalid},
		{"/dl/v1/SHA256SUMS.sig", http.StatusGone, nil, ErrUnsigned},
	}
	for _, tc := range cases {
		t.Run(tc.path+" "+strconv.Itoa(tc.status), func(t *testing.T) {
			h := newWebHost(t, false)
			h.putRelease(t, "v1")
			h.setStatus(tc.path, tc.status)
			_, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "v1")
			assert.ErrorIs(t, err, tc.want)
			if tc.want != ErrUnsigned {
				assert.ErrorContains(t, err, "HTTP "+strconv.Itoa(tc.status))
			}
		})
	}
}

func TestURLUnreachable(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		h := newWebHost(t, false)
		u := h.srv.URL
		h.srv.Close()
		_, err := newURLSource(t, URLOptions{URL: u + "/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "")
		assert.ErrorIs(t, err, ErrUnreachable)
		assert.ErrorContains(t, err, u+"/SHA256SUMS")
	})
	t.Run("timeout", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
		t.Cleanup(srv.Close)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err := newURLSource(t, URLOptions{URL: srv.URL + "/SHA256SUMS", Keys: webKeys(t)}).Fetch(ctx, "")
		assert.ErrorIs(t, err, ErrUnreachable)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestURLOversized(t *testing.T) {
	big := func(n int) []byte { return bytes.Repeat([]byte("0"), n) }
	t.Run("checksum file with Content-Length", func(t *testing.T) {
		h := newWebHost(t, false)
		h.put("/dl/v1/SHA256SUMS", big(maxChecksumBytes+1))
		_, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.ErrorContains(t, err, "limit")
		assert.Equal(t, []string{"/dl/v1/SHA256SUMS"}, h.paths(), "no signature is fetched for a refused file")
	})
	t.Run("checksum file chunked", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for range 5 {
				_, _ = w.Write(big(1 << 20))
				w.(http.Flusher).Flush()
			}
		}))
		t.Cleanup(srv.Close)
		_, err := newURLSource(t, URLOptions{URL: srv.URL + "/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.ErrorContains(t, err, "limit")
	})
	t.Run("signature", func(t *testing.T) {
		h := newWebHost(t, false)
		h.putRelease(t, "v1")
		h.put("/dl/v1/SHA256SUMS.asc", big(maxSignatureBytes+1))
		_, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.ErrorContains(t, err, "signature")
	})
	t.Run("just under the limits is read", func(t *testing.T) {
		h := newWebHost(t, false)
		h.put("/dl/v1/SHA256SUMS", webFixture(t, "release", "SHA256SUMS"))
		h.put("/dl/v1/SHA256SUMS.asc", big(maxSignatureBytes))
		_, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, signing.ErrRefused, "the signature was read whole and judged")
	})
}

func TestURLTagEscaping(t *testing.T) {
	h := newWebHost(t, false)
	const tag = "release/1.0?x=1#frag"
	const dir = "/dl/release%2F1.0%3Fx=1%23frag/"
	h.put(dir+"SHA256SUMS", webFixture(t, "release", "SHA256SUMS"))
	h.put(dir+"SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.asc"))
	h.put(dir+"install.sh", webFixture(t, "release", "install.sh"))
	src := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)})

	rel, err := src.Fetch(t.Context(), tag)
	require.NoError(t, err)
	assert.Equal(t, tag, rel.Tag)
	assert.Equal(t, "SHA256SUMS", rel.ChecksumsName)
	body, err := rel.Open(t.Context(), "install.sh")
	require.NoError(t, err)
	assert.Equal(t, webFixture(t, "release", "install.sh"), webReadAll(t, body))
	assert.Equal(t, []string{dir + "SHA256SUMS", dir + "SHA256SUMS.asc", dir + "install.sh"}, h.paths(), "no query, the tag is one path segment")

	for _, bad := range []string{"", ".", "..", "v1\n", "v1\x00", strings.Repeat("v", 300)} {
		_, err := src.Fetch(t.Context(), bad)
		assert.ErrorIs(t, err, ErrInvalid, "%q", bad)
	}
	assert.Len(t, h.paths(), 3, "a refused tag makes no request")
}

func TestURLCandidates(t *testing.T) {
	keys := webKeys(t)
	withTag := newURLSource(t, URLOptions{URL: "https://example.com/dl/{tag}/SHA256SUMS", Keys: keys})
	_, err := withTag.Candidates(t.Context())
	assert.ErrorIs(t, err, ErrInvalid)
	assert.ErrorContains(t, err, "tag: latest needs a git or github source, or a url without {tag}")
	assert.Equal(t, "url https://example.com/dl/{tag}/SHA256SUMS", withTag.Key())

	fixed := newURLSource(t, URLOptions{URL: "https://example.com/dl/SHA256SUMS", Keys: keys})
	cands, err := fixed.Candidates(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []Candidate{{Tag: ""}}, cands)
	_, err = fixed.Fetch(t.Context(), "v1.0.0")
	assert.ErrorIs(t, err, ErrInvalid, "a fixed URL does not hold tag v1.0.0")
}

func TestURLFixedLocation(t *testing.T) {
	h := newWebHost(t, false)
	h.put("/latest/SHA256SUMS", webFixture(t, "release", "SHA256SUMS"))
	h.put("/latest/SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.asc"))
	rel, err := newURLSource(t, URLOptions{URL: h.srv.URL + "/latest/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "")
	require.NoError(t, err)
	assert.Equal(t, "", rel.Tag)
	assert.Equal(t, "url "+h.srv.URL+"/latest/SHA256SUMS", rel.Name())
}

func TestURLFiles(t *testing.T) {
	h := newWebHost(t, false)
	h.put("/dl/v1/SHA256SUMS", webFixture(t, "release", "SHA256SUMS"))
	h.put("/dl/v1/SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.asc"))
	h.put("/files/v1/dist/x%3Fy%23z%20w.sh", []byte("escaped"))
	h.put("/files/v1/codecov", webFixture(t, "release", "codecov"))
	src := newURLSource(t, URLOptions{
		URL:   h.srv.URL + "/dl/{tag}/SHA256SUMS?raw=1",
		Files: h.srv.URL + "/files/{tag}/{name}",
		Keys:  webKeys(t),
	})
	rel, err := src.Fetch(t.Context(), "v1")
	require.NoError(t, err)
	assert.Equal(t, []string{"/dl/v1/SHA256SUMS?raw=1", "/dl/v1/SHA256SUMS.asc?raw=1"}, h.paths(), "the default signature URL keeps the query after the path")

	body, err := rel.Open(t.Context(), "dist/x?y#z w.sh")
	require.NoError(t, err)
	assert.Equal(t, "escaped", string(webReadAll(t, body)))
	body, err = rel.Open(t.Context(), "./codecov")
	require.NoError(t, err)
	assert.Equal(t, webFixture(t, "release", "codecov"), webReadAll(t, body))

	_, err = rel.Open(t.Context(), "install.sh")
	assert.ErrorIs(t, err, ErrFileMissing)
	assert.ErrorContains(t, err, "/files/v1/install.sh")

	h.setStatus("/files/v1/broken", http.StatusInternalServerError)
	_, err = rel.Open(t.Context(), "broken")
	assert.ErrorIs(t, err, ErrUnreachable)

	n := len(h.paths())
	for _, bad := range []string{"../SHA256SUMS", "a/../../b", "/etc/passwd", `a\b`, "..", ".", "a//b", "a/./b", "a/", "x\n", "x\x00y", "x\x7f", "", string([]byte{0xff})} {
		_, err := rel.Open(t.Context(), bad)
		assert.ErrorIs(t, err, ErrInvalid, "%q", bad)
	}
	assert.Len(t, h.paths(), n, "a hostile name makes no request")
}

func TestURLRedirects(t *testing.T) {
	t.Run("to another loopback host", func(t *testing.T) {
		a, b := newWebHost(t, false), newWebHost(t, false)
		b.putRelease(t, "v1")
		b.put("/dl/v1/SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.asc"))
		for _, n := range []string{"SHA256SUMS", "SHA256SUMS.asc", "install.sh"} {
			a.setRedirect("/v1/"+n, b.srv.URL+"/dl/v1/"+n)
		}
		rel, err := newURLSource(t, URLOptions{URL: a.srv.URL + "/{tag}/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		assert.Equal(t, "url "+a.srv.URL+"/v1/SHA256SUMS", rel.Source)
		body, err := rel.Open(t.Context(), "install.sh")
		require.NoError(t, err)
		assert.Equal(t, webFixture(t, "release", "install.sh"), webReadAll(t, body))
	})
	t.Run("to plain http off loopback", func(t *testing.T) {
		a := newWebHost(t, false)
		a.setRedirect("/SHA256SUMS", "http://example.com/SHA256SUMS")
		_, err := newURLSource(t, URLOptions{URL: a.srv.URL + "/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.ErrorContains(t, err, "redirect to http://example.com/SHA256SUMS refused")
	})
	t.Run("from https to http", func(t *testing.T) {
		a, b := newWebHost(t, true), newWebHost(t, false)
		b.putRelease(t, "v1")
		a.setRedirect("/SHA256SUMS", b.srv.URL+"/dl/v1/SHA256SUMS")
		_, err := newURLSource(t, URLOptions{URL: a.srv.URL + "/SHA256SUMS", Keys: webKeys(t), Client: a.srv.Client()}).Fetch(t.Context(), "")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.Empty(t, b.paths())
	})
	t.Run("loop", func(t *testing.T) {
		a := newWebHost(t, false)
		a.setRedirect("/SHA256SUMS", "/SHA256SUMS")
		_, err := newURLSource(t, URLOptions{URL: a.srv.URL + "/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.ErrorContains(t, err, "more than 5 redirects")
		assert.Len(t, a.paths(), 6)
	})
	t.Run("hostile location is not echoed whole", func(t *testing.T) {
		a := newWebHost(t, false)
		a.setRedirect("/SHA256SUMS", "ftp://"+strings.Repeat("x", 10000))
		_, err := newURLSource(t, URLOptions{URL: a.srv.URL + "/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.Less(t, len(err.Error()), 600)
	})
	t.Run("cookies are not kept", func(t *testing.T) {
		a := newWebHost(t, false)
		a.putRelease(t, "v1")
		a.put("/dl/v1/SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.asc"))
		a.setHeader("/dl/v1/SHA256SUMS", http.Header{"Set-Cookie": {"session=secret; Path=/"}})
		_, err := newURLSource(t, URLOptions{URL: a.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: webKeys(t)}).Fetch(t.Context(), "v1")
		require.NoError(t, err)
		for _, r := range a.requests() {
			assert.Empty(t, r.Header.Get("Cookie"))
			assert.Equal(t, "tamperguard", r.Header.Get("User-Agent"))
			assert.Empty(t, r.Header.Get("Authorization"))
		}
	})
}

func TestNewURLValidates(t *testing.T) {
	keys := webKeys(t)
	good := []URLOptions{
		{URL: "https://example.com/dl/{tag}/SHA256SUMS"},
		{URL: "https://example.com/SHA256SUMS?raw=true"},
		{URL: "http://127.0.0.1:8080/{tag}/SHA256SUMS"},
		{URL: "http://127.1.2.3/SHA256SUMS"},
		{URL: "http://localhost:1/SHA256SUMS"},
		{URL: "http://[::1]:1/SHA256SUMS"},
		{URL: "https://example.com/{tag}/SHA256SUMS", Signature: "https://sigs.example.com/{tag}.sig", Files: "https://cdn.example.com/{tag}/{name}"},
	}
	for _, o := range good {
		o.Keys = keys
		_, err := NewURL(o)
		assert.NoError(t, err, "%+v", o)
	}
	bad := []URLOptions{
		{URL: ""},
		{URL: "/dl/{tag}/SHA256SUMS"},
		{URL: "example.com/SHA256SUMS"},
		{URL: "http://example.com/SHA256SUMS"},
		{URL: "http://10.0.0.1/SHA256SUMS"},
		{URL: "http://localhost.example.com/SHA256SUMS"},
		{URL: "ftp://example.com/SHA256SUMS"},
		{URL: "file:///etc/SHA256SUMS"},
		{URL: "https://user:secret@example.com/SHA256SUMS"},
		{URL: "https://example.com/"},
		{URL: "https://example.com"},
		{URL: "https://{tag}.example.com/SHA256SUMS"},
		{URL: "https://example.com:{tag}/SHA256SUMS"},
		{URL: "https://example.com/SHA256SUMS?v={tag}"},
		{URL: "https://example.com/SHA256SUMS#{tag}"},
		{URL: "https://example.com/{version}/SHA256SUMS"},
		{URL: "https://example.com/dl/SHA 256SUMS"},
		{URL: "https://example.com/{tag}/SHA256SUMS", Signature: "http://example.com/{tag}/SHA256SUMS.asc"},
		{URL: "https://example.com/{tag}/SHA256SUMS", Files: "https://example.com/{tag}/"},
		{URL: "https://example.com/{tag}/SHA256SUMS", Files: "https://example.com/files?name={name}"},
		{URL: "https://example.com/SHA256SUMS", Files: "https://example.com/{tag}/{name}"},
	}
	for _, o := range bad {
		o.Keys = keys
		_, err := NewURL(o)
		assert.Error(t, err, "%+v", o)
	}
	_, err := NewURL(URLOptions{URL: "https://example.com/SHA256SUMS"})
	assert.Error(t, err, "no keys")
	_, err = NewURL(URLOptions{URL: "https://user:hunter2@example.com/SHA256SUMS", Keys: keys})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
}

func TestEscapeName(t *testing.T) {
	got, err := escapeName("dist/linux x64/codecov?#%")
	require.NoError(t, err)
	assert.Equal(t, "dist/linux%20x64/codecov%3F%23%25", got)
	_, err = escapeName("dist/../x")
	assert.True(t, errors.Is(err, ErrInvalid))
}

// rollbackFixture reads a file of the two releases in testdata/rollback (v1.0.0 signed
// 2025-03-01, v1.1.0 signed 2025-03-08, by gpg with a faked clock; SSH signatures too).
func rollbackFixture(t *testing.T, version, name string) []byte {
	t.Helper()
	return webFixture(t, filepath.Join("rollback", version), name)
}

// rollbackKeys pins the OpenPGP and SSH keys that signed testdata/rollback.
func rollbackKeys(t *testing.T) *signing.Keys {
	t.Helper()
	k, err := signing.NewKeys([][]byte{webFixture(t, "rollback", "rollback-ed25519.asc")},
		[][]byte{webFixture(t, "rollback", "rollback_ed25519.pub")}, nil, signing.Options{})
	require.NoError(t, err)
	return k
}

// serveRollback serves release version's checksum file (sums: "SHA256SUMS" or
// "SHA256SUMS.versioned") and its signature (sig: ".asc" or ".sig") at dir/SHA256SUMS.
func (h *webHost) serveRollback(t *testing.T, dir, version, sums, sig string) {
	h.put(dir+"/SHA256SUMS", rollbackFixture(t, version, sums))
	h.put(dir+"/SHA256SUMS"+sig, rollbackFixture(t, version, sums+sig))
	h.put(dir+"/install.sh", rollbackFixture(t, version, "install.sh"))
}

var (
	signedV100 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	signedV110 = time.Date(2025, 3, 8, 12, 0, 0, 0, time.UTC)
)

// Codecov's layout: a fixed URL (no {tag}) whose checksum file and signature sit next to the
// script. Swapping in the older, validly signed checksum file is a rollback: its OpenPGP
// signature is older than the one that verified before. The rule stays judged against the
// newer release, and says why.
func TestURLFixedRollbackRefused(t *testing.T) {
	h := newWebHost(t, false)
	h.serveRollback(t, "/latest", "v1.1.0", "SHA256SUMS", ".asc")
	src := newURLSource(t, URLOptions{URL: h.srv.URL + "/latest/SHA256SUMS", Keys: rollbackKeys(t)})
	marks := &MemoryMarks{}
	r := NewResolver(ResolverOptions{Marks: marks})
	ctx := t.Context()

	rel, err := r.Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	require.Equal(t, signedV110, rel.Time)
	good, err := rel.Lookup("install.sh")
	require.NoError(t, err)

	h.serveRollback(t, "/latest", "v1.0.0", "SHA256SUMS", ".asc")
	rel, err = r.Resolve(ctx, src, Latest, time.Now())
	require.NoError(t, err)
	require.NotNil(t, rel.Floor, "the older checksum file is not accepted")
	assert.ErrorIs(t, rel.Floor.Reason, ErrRollback)
	assert.Contains(t, rel.Floor.Reason.Error(), "signed 2025-03-01T12:00:00Z")
	assert.Contains(t, rel.Floor.Reason.Error(), "signed 2025-03-08T12:00:00Z")
	e, err := rel.Lookup("install.sh")
	require.NoError(t, err)
	assert.Equal(t, good.Digest, e.Digest, "judged against v1.1.0's signed digest")

	// Another instance (or this one restarted) sharing the store: the kept checksum file and
	// signature verify again, so the floor holds there too.
	rel, err = NewResolver(ResolverOptions{Marks: marks}).Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	require.NotNil(t, rel.Floor)
	e, err = rel.Lookup("install.sh")
	require.NoError(t, err)
	assert.Equal(t, good.Digest, e.Digest)

	// The maintainers publish a newer release: it verifies and raises the mark.
	h.serveRollback(t, "/latest", "v1.1.0", "SHA256SUMS", ".asc")
	rel, err = r.Resolve(ctx, src, Latest, time.Now())
	require.NoError(t, err)
	assert.Nil(t, rel.Floor)
}

// A 404, a missing signature, a garbled body or a dead host at the release host does not
// switch restore off: the floor answers, and says whether a retry may help.
func TestURLBrokenHostFallsBackToTheFloor(t *testing.T) {
	cases := []struct {
		name      string
		breakIt   func(h *webHost)
		reason    error
		transient bool
	}{
		{"checksum file 404", func(h *webHost) { h.setStatus("/latest/SHA256SUMS", http.StatusNotFound) }, ErrNotFound, false},
		{"signature gone", func(h *webHost) { h.setStatus("/latest/SHA256SUMS.asc", http.StatusNotFound) }, ErrUnsigned, false},
		{"garbled signature", func(h *webHost) {
			h.put("/latest/SHA256SUMS.asc", []byte("-----BEGIN PGP SIGNATURE-----\n\ngarbage\n"))
		}, signing.ErrRefused, false},
		{"garbled checksum file", func(h *webHost) { h.put("/latest/SHA256SUMS", []byte("<html>maintenance</html>")) }, signing.ErrRefused, false},
		{"server error", func(h *webHost) { h.setStatus("/latest/SHA256SUMS", http.StatusBadGateway) }, ErrUnreachable, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newWebHost(t, false)
			h.serveRollback(t, "/latest", "v1.1.0", "SHA256SUMS", ".asc")
			src := newURLSource(t, URLOptions{URL: h.srv.URL + "/latest/SHA256SUMS", Keys: rollbackKeys(t)})
			r := NewResolver(ResolverOptions{})
			_, err := r.Resolve(t.Context(), src, Latest, time.Time{})
			require.NoError(t, err)

			tc.breakIt(h)
			rel, err := r.Resolve(t.Context(), src, Latest, time.Now())
			require.NoError(t, err)
			require.NotNil(t, rel.Floor)
			assert.Equal(t, tc.transient, rel.Floor.Transient())
			assert.Equal(t, signedV110, rel.Time)
			require.Len(t, rel.Skipped, 1)
			assert.ErrorIs(t, rel.Skipped[0].Reason, tc.reason)

			// Without a floor (a fresh instance, no state) it stays an error.
			_, err = NewResolver(ResolverOptions{}).Resolve(t.Context(), src, Latest, time.Time{})
			assert.ErrorIs(t, err, tc.reason)
		})
	}
}

// A floor kept in the store counts only if it verifies against the keys pinned now.
func TestURLStoredFloorNeedsTheCurrentKeys(t *testing.T) {
	h := newWebHost(t, false)
	h.serveRollback(t, "/latest", "v1.1.0", "SHA256SUMS", ".asc")
	marks := &MemoryMarks{}
	_, err := NewResolver(ResolverOptions{Marks: marks}).Resolve(t.Context(),
		newURLSource(t, URLOptions{URL: h.srv.URL + "/latest/SHA256SUMS", Keys: rollbackKeys(t)}), Latest, time.Time{})
	require.NoError(t, err)

	// The maintainers rotate keys; the host is broken meanwhile.
	h.setStatus("/latest/SHA256SUMS", http.StatusNotFound)
	rotated := newURLSource(t, URLOptions{URL: h.srv.URL + "/latest/SHA256SUMS", Keys: webKeys(t)})
	_, err = NewResolver(ResolverOptions{Marks: marks}).Resolve(t.Context(), rotated, Latest, time.Time{})
	assert.ErrorIs(t, err, ErrNotFound, "the old floor does not verify against the new keys: no floor")

	// The next release under the new keys replaces the void record, although it is older.
	h.mu.Lock()
	delete(h.status, "/latest/SHA256SUMS")
	h.mu.Unlock()
	h.put("/latest/SHA256SUMS", webFixture(t, "release", "SHA256SUMS"))
	h.put("/latest/SHA256SUMS.asc", webFixture(t, "release", "SHA256SUMS.asc"))
	_, err = NewResolver(ResolverOptions{Marks: marks}).Resolve(t.Context(), rotated, Latest, time.Time{})
	require.NoError(t, err)
	m, ok, err := marks.LoadMark(t.Context(), rotated.Key())
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), m.Time)
}

// An exact tag ({tag} in the URL) keeps its own mark: the older release's checksum file
// served under the newer tag is refused by its signature time, or at once when the checksum
// file names versioned files.
func TestURLTaggedReplayRefused(t *testing.T) {
	t.Run("by signature time", func(t *testing.T) {
		h := newWebHost(t, false)
		h.serveRollback(t, "/dl/v1.1.0", "v1.1.0", "SHA256SUMS", ".asc")
		src := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: rollbackKeys(t)})
		r := NewResolver(ResolverOptions{})
		_, err := r.Resolve(t.Context(), src, "v1.1.0", time.Time{})
		require.NoError(t, err)
		h.serveRollback(t, "/dl/v1.1.0", "v1.0.0", "SHA256SUMS", ".asc")
		rel, err := r.Resolve(t.Context(), src, "v1.1.0", time.Now())
		require.NoError(t, err)
		require.NotNil(t, rel.Floor)
		assert.ErrorIs(t, rel.Floor.Reason, ErrRollback)
		assert.Equal(t, signedV110, rel.Time)
	})
	t.Run("by versioned names, SSH signed", func(t *testing.T) {
		h := newWebHost(t, false)
		h.serveRollback(t, "/dl/v1.1.0", "v1.0.0", "SHA256SUMS.versioned", ".sig")
		src := newURLSource(t, URLOptions{URL: h.srv.URL + "/dl/{tag}/SHA256SUMS", Keys: rollbackKeys(t)})
		_, err := NewResolver(ResolverOptions{}).Resolve(t.Context(), src, "v1.1.0", time.Time{})
		require.ErrorIs(t, err, ErrRollback)
		assert.True(t, Refused(err))
		assert.ErrorContains(t, err, "lists the files of version v1.0.0, not of v1.1.0")

		h.serveRollback(t, "/dl/v1.1.0", "v1.1.0", "SHA256SUMS.versioned", ".sig")
		rel, err := NewResolver(ResolverOptions{}).Resolve(t.Context(), src, "v1.1.0", time.Time{})
		require.NoError(t, err)
		assert.Equal(t, "v1.1.0", rel.Version)
		assert.True(t, rel.Time.IsZero(), "an SSH signature carries no time")
	})
	t.Run("fixed URL, SSH signed, versioned names", func(t *testing.T) {
		h := newWebHost(t, false)
		h.serveRollback(t, "/latest", "v1.1.0", "SHA256SUMS.versioned", ".sig")
		src := newURLSource(t, URLOptions{URL: h.srv.URL + "/latest/SHA256SUMS", Keys: rollbackKeys(t)})
		r := NewResolver(ResolverOptions{})
		_, err := r.Resolve(t.Context(), src, Latest, time.Time{})
		require.NoError(t, err)
		h.serveRollback(t, "/latest", "v1.0.0", "SHA256SUMS.versioned", ".sig")
		rel, err := r.Resolve(t.Context(), src, Latest, time.Now())
		require.NoError(t, err)
		require.NotNil(t, rel.Floor, "the version the signed file names orders it")
		assert.Equal(t, "v1.1.0", rel.Version)
	})
}

// Tokens in a URL's query appear in no key, release name or error.
func TestURLQueryNeverShown(t *testing.T) {
	const secret = "SECRETtoken123"
	h := newWebHost(t, false)
	src := newURLSource(t, URLOptions{URL: h.srv.URL + "/latest/SHA256SUMS?token=" + secret, Keys: rollbackKeys(t)})
	assert.NotContains(t, src.Key(), secret)
	assert.Contains(t, src.Key(), "/latest/SHA256SUMS?<query sha256:")
	other := newURLSource(t, URLOptions{URL: h.srv.URL + "/latest/SHA256SUMS?token=other", Keys: rollbackKeys(t)})
	assert.NotEqual(t, src.Key(), other.Key())
	h.serveRollback(t, "/latest", "v1.1.0", "SHA256SUMS", ".asc")
	rel, err := NewResolver(ResolverOptions{}).Resolve(t.Context(), src, Latest, time.Time{})
	require.NoError(t, err)
	assert.NotContains(t, rel.Source, secret)
	assert.NotContains(t, rel.Name(), secret)
	h.setStatus("/latest/SHA256SUMS", http.StatusInternalServerError)
	_, err = NewResolver(ResolverOptions{}).Resolve(t.Context(), src, Latest, time.Time{})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
	_, err = NewURL(URLOptions{URL: "https://example.com/{version}/SHA256SUMS?token=" + secret, Keys: rollbackKeys(t)})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
}

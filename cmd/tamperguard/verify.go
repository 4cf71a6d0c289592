package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tamperguard/tamperguard/internal/checksum"
	"github.com/tamperguard/tamperguard/internal/config"
	"github.com/tamperguard/tamperguard/internal/engine"
	"github.com/tamperguard/tamperguard/internal/gcs"
	"github.com/tamperguard/tamperguard/internal/gsref"
	"github.com/tamperguard/tamperguard/internal/policy"
	"github.com/tamperguard/tamperguard/internal/release"
)

// verifyLine is verify's one JSON line on stdout.
type verifyLine struct {
	Object         string `json:"object"`
	Verdict        string `json:"verdict"`
	ExpectedSHA256 string `json:"expected_sha256"`
	ActualSHA256   string `json:"actual_sha256"`
	// ExpectedDigest and ActualDigest: the signed digest and the file's, when the release
	// lists another algorithm than SHA-256 ("sha512:<hex>").
	ExpectedDigest string `json:"expected_digest,omitempty"`
	ActualDigest   string `json:"actual_digest,omitempty"`
	Size           int64  `json:"size"`
	Release        string `json:"release"`
	Signer         string `json:"signer"`
	Reason         string `json:"reason,omitempty"`
	Error          string `json:"error,omitempty"`
	// Floor, when set, says the file was judged against the last release that verified
	// (kept in the state bucket), and why no newer one was trusted.
	Floor string `json:"floor,omitempty"`
}

func runVerify(ctx context.Context, e env, args []string) error {
	fs := flagSet(e, "verify", "verify [--config FILE] [--bucket NAME] --object NAME FILE\n\n"+
		"Checks a local copy of a published object (FILE, or - for stdin) against the digest in\n"+
		"the signed release that the configuration's rule for NAME trusts. With a state bucket in\n"+
		"the configuration, its rollback marks and last verified releases count too (read only).")
	configFile := configFlag(fs)
	object := fs.String("object", "", "the published object `name` FILE claims to be (or gs://BUCKET/NAME)")
	bucket := fs.String("bucket", "", "the `bucket` whose rule applies, when several rules match NAME")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *object == "" {
		return misuse("need --object NAME and exactly one FILE")
	}
	file := pos[0]
	flagFile := configFile()
	cfg, err := config.Load(flagFile, e.getenv)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	b, name, err := verifyTarget(*bucket, *object)
	if err != nil {
		return err
	}
	pol := cfg.Policy
	m, err := matchAnyBucket(pol, b, name)
	if err != nil {
		return err
	}

	ro := release.ResolverOptions{TTL: pol.ReleaseTTL}
	if state := pol.StateBucket; state != "" {
		// The marks and floors the deployment keeps: without them a rollback the function
		// refuses would pass here.
		if e.storageClient == nil {
			return fmt.Errorf("the configuration names state bucket %s, but Cloud Storage cannot be reached from here", state)
		}
		client, closeClient, err := e.storageClient(ctx)
		if err != nil {
			return fmt.Errorf("connecting to Cloud Storage for state bucket %s: %w", state, err)
		}
		defer func() { _ = closeClient() }()
		ro.Marks = readOnlyMarks{engine.NewStateMarks(gcs.New(client), state)}
	}
	res := release.NewResolver(ro)
	open := func() (io.ReadCloser, error) {
		if file == "-" {
			return io.NopCloser(os.Stdin), nil
		}
		return os.Open(file)
	}
	r := engine.VerifyLocal(ctx, res, m, name, open)

	line := verifyLine{Object: name, Verdict: string(r.Verdict), Size: r.Size, Reason: string(r.Reason)}
	if r.Expected != nil {
		line.ExpectedSHA256 = r.Expected.String()
	}
	if r.Actual != nil {
		line.ActualSHA256 = r.Actual.String()
	}
	if w := r.Checked.Want; !w.IsZero() && w.Algorithm() != checksum.SHA256 {
		line.ExpectedDigest, line.ActualDigest = digestText(w), digestText(r.Checked.Sum)
	}
	if r.Release != nil {
		line.Release = r.Release.Tag
		line.Signer = r.Release.Signer.ID()
		if s := r.Checked.Vouched.Signer; s.Scheme != "" {
			line.Signer = s.ID() // a signature over the file, an attestation
		}
		if f := r.Release.Floor; f != nil && f.Reason != nil {
			line.Floor = f.Reason.Error()
		}
	}
	if r.Err != nil {
		line.Error = r.Err.Error()
	}
	out, err := json.Marshal(line)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s\n", out)
	explainVerify(e.stderr, file, r)

	switch r.Verdict {
	case engine.VerdictOK:
		return nil
	case engine.VerdictTampered:
		return errTampered
	default:
		return fmt.Errorf("%s is unverifiable (%s)", name, r.Reason)
	}
}

// digestText is a digest as "sha512:<hex>".
func digestText(s checksum.Sum) string {
	b, _ := s.MarshalText()
	return string(b)
}

// explainVerify tells a person on stderr what the JSON line means.
func explainVerify(w io.Writer, file string, r engine.LocalResult) {
	if r.Release != nil {
		for _, s := range r.Release.Skipped {
			what := "newer tag"
			if s.Tag == r.Release.Tag {
				what = "tag" // an exact tag whose last verified copy stands in
			}
			fmt.Fprintf(w, "warning: %s %q was not trusted: %v\n", what, s.Tag, s.Reason)
		}
		if f := r.Release.Floor; f != nil {
			fmt.Fprintf(w, "warning: judged against %s, the last release that verified (%s), because no newer one can be trusted now: %v\n",
				r.Release.Name(), f.Verified.UTC().Format(time.RFC3339), f.Reason)
		}
	}
	switch r.Verdict {
	case engine.VerdictOK:
		fmt.Fprintf(w, "OK: %s is %s as signed in release %s by %s\n", file, r.Object, r.Release.Name(), r.Release.Signer)
	case engine.VerdictTampered:
		fmt.Fprintf(w, "TAMPERED: %s is NOT the %s that release %s lists (signed by %s).\n", file, r.Object, r.Release.Name(), r.Release.Signer)
		if c := r.Checked; !c.Want.IsZero() && c.Want.Algorithm() != checksum.SHA256 {
			fmt.Fprintf(w, "  expected %s\n  actual   %s (%d bytes)\n", c.Want.Label(), c.Sum.Label(), r.Size)
		} else {
			fmt.Fprintf(w, "  expected sha256 %s\n  actual   sha256 %s (%d bytes)\n", r.Expected, r.Actual, r.Size)
		}
		fmt.Fprintln(w, "  Do not run or install it.")
	default:
		fmt.Fprintf(w, "UNVERIFIABLE: cannot tell whether %s is the signed %s: %v\n", file, r.Object, r.Err)
	}
}

// verifyTarget reads --bucket and --object (a name, or gs://BUCKET/NAME) and checks them
// against Cloud Storage's naming rules.
func verifyTarget(bucket, object string) (string, string, error) {
	if bucket != "" {
		if err := gsref.CheckBucket(bucket); err != nil {
			return "", "", fmt.Errorf("--bucket: %w", err)
		}
	}
	if !strings.HasPrefix(object, gsref.Scheme) {
		if err := gsref.CheckObject(object); err != nil {
			return "", "", fmt.Errorf("--object: %w", err)
		}
		return bucket, object, nil
	}
	r, err := gsref.Parse(object)
	switch {
	case errors.Is(err, gsref.ErrSyntax):
		return "", "", fmt.Errorf("--object %q: want gs://BUCKET/NAME", object)
	case err != nil:
		return "", "", fmt.Errorf("--object: %w", err)
	case r.Generation != 0:
		return "", "", fmt.Errorf("--object %q names a generation; verify checks a local copy against the signed release: give gs://BUCKET/NAME", object)
	case bucket != "" && bucket != r.Bucket:
		return "", "", fmt.Errorf("--bucket %q and --object %q name different buckets", bucket, object)
	}
	return r.Bucket, r.Object, nil
}

// matchAnyBucket finds the rule for object when the bucket may be left out: it must be
// unambiguous.
func matchAnyBucket(pol *policy.Policy, bucket, object string) (policy.Match, error) {
	if bucket != "" {
		m, ok := pol.Match(bucket, object)
		if !ok {
			return policy.Match{}, fmt.Errorf("no rule in %s covers gs://%s/%s", pol.Origin, bucket, object)
		}
		return m, nil
	}
	var found []policy.Match
	var buckets []string
	for _, r := range pol.Rules {
		if slices.Contains(buckets, r.Bucket) {
			continue
		}
		if m, ok := pol.Match(r.Bucket, object); ok {
			found = append(found, m)
			buckets = append(buckets, r.Bucket)
		}
	}
	switch len(found) {
	case 0:
		return policy.Match{}, fmt.Errorf("no rule in %s covers an object named %q", pol.Origin, object)
	case 1:
		return found[0], nil
	default:
		return policy.Match{}, fmt.Errorf("%q is covered by rules for buckets %s: pass --bucket", object, strings.Join(buckets, ", "))
	}
}

// readOnlyMarks reads the state bucket's marks and floors but never writes them: verify runs
// where a consumer checks a download, usually without (and never needing) write access.
type readOnlyMarks struct{ release.MarkStore }

func (readOnlyMarks) SaveMark(context.Context, string, release.Mark) error { return nil }

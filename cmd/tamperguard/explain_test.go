package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/tamperguard/tamperguard/internal/engine"
)

// A metadata change is explained as one: the bytes are the signed ones, the headers are not
// (it read "(sha256 ) is not what release v1.0.0 signed" before).
func TestExplainMetadataTampering(t *testing.T) {
	d := &engine.Decision{Bucket: "my-downloads", Object: "install.sh", Generation: 7, Verdict: engine.VerdictTampered,
		Reason: engine.ReasonMetadata, Release: "v1.0.0", Action: engine.ActionMetadataRestored,
		ExpectedSHA256: "25eb6b0e"}
	d.MetadataChanges = map[string][2]string{"Content-Type": {"text/html", "text/x-shellscript"}, "Cache-Control": {"public, max-age=31536000", "no-cache"}}
	var b bytes.Buffer
	explainDecision(&b, d)
	assert.Equal(t, "TAMPERED METADATA: gs://my-downloads/install.sh#7 holds the bytes release v1.0.0 signed, but its protected metadata changed "+
		`(Cache-Control "public, max-age=31536000", must be "no-cache"; Content-Type "text/html", must be "text/x-shellscript"); action: metadata_restored`+"\n", b.String())

	// Bytes that differ are still explained by their digests.
	d = &engine.Decision{Bucket: "my-downloads", Object: "install.sh", Generation: 8, Verdict: engine.VerdictTampered,
		Release: "v1.0.0", Action: engine.ActionRestored, ExpectedSHA256: "25eb6b0e", ActualSHA256: "239dcfe2", RestoredGeneration: 9}
	b.Reset()
	explainDecision(&b, d)
	assert.Equal(t, "TAMPERED: gs://my-downloads/install.sh#8 (sha256 239dcfe2) is not what release v1.0.0 signed (25eb6b0e); action: restored, restored as generation 9\n", b.String())
}

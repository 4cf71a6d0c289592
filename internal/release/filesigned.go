package release

import (
	"context"
	"fmt"

	"github.com/tamperguard/tamperguard/internal/checksum"
)

// A URL source with release.signed: file has no checksum file: each released file carries a
// detached signature over itself (jq's and xz's tarballs, for instance). The release is
// where the files and their signatures are (a tag, when the URL has one); what vouches for
// one file is its signatures, read when that file is checked and verified while its bytes
// stream through the check (signing.FileCheck), never buffered whole.

// maxFileSigCache bounds the files whose signatures one release keeps.
const maxFileSigCache = 1024

// fileSigned is how a release signed file by file vouches for a file.
type fileSigned struct {
	src   *URLSource
	tag   string
	cache *boundedCache[*fileVouch]
}

// fileRelease is the release at tag of a source signed file by file. Nothing is read yet:
// there is nothing signed about the release as a whole, so it carries no signer, time or
// version, and keeps no evidence (see the README on rollback of such files).
func (s *URLSource) fileRelease(tag string) (*Release, error) {
	if err := s.checkTag(tag); err != nil {
		return nil, err
	}
	return &Release{
		Source:   "url " + redactTemplate(s.url),
		Tag:      tag,
		files:    &urlFiles{src: s, tag: tag},
		fileSigs: &fileSigned{src: s, tag: tag, cache: &boundedCache[*fileVouch]{max: maxFileSigCache}},
	}, nil
}

// expect reads the signatures over file name (every signature URL that exists) and checks,
// before any byte of the file is read, that enough of them are by pinned keys to count.
func (f *fileSigned) expect(ctx context.Context, r *Release, name string) (Expected, error) {
	x := Expected{Name: name, Entry: checksum.Entry{Name: name}, How: "signature over the file"}
	if v, ok := f.cache.get(name); ok {
		x.file = v
		return x, nil
	}
	escaped, err := escapeName(name)
	if err != nil {
		return Expected{}, err
	}
	sigs, _, err := f.src.signaturesFor(ctx, f.tag, escaped, "file "+clip(name)+" of "+r.Name(), nil)
	if err != nil {
		return Expected{}, err
	}
	if _, err := f.src.keys.NewFileCheck(sigs, f.src.threshold); err != nil {
		return Expected{}, fmt.Errorf("signature over %s of %s: %w", clip(name), r.Name(), err)
	}
	v := &fileVouch{sigs: sigs, id: sigsID(sigs), keys: f.src.keys, threshold: f.src.threshold}
	f.cache.put(name, v)
	x.file = v
	return x, nil
}

package version

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestShortAndString(t *testing.T) {
	i := Info{Module: "(devel)", Revision: "0123456789abcdef0123", Time: "2026-12-07T10:00:00Z", Go: "go1.26.8"}
	assert.Equal(t, "0123456789ab", i.Short())
	i.Modified = true
	assert.Equal(t, "0123456789ab-dirty", i.Short())
	assert.True(t, strings.HasPrefix(i.String(), "tamperguard (devel) (revision 0123456789abcdef0123, 2026-12-07T10:00:00Z, modified) go1.26.8 "))

	r := Info{Module: "v1.2.3", Revision: "0123456789abcdef", Go: "go1.26.8"}
	assert.Equal(t, "v1.2.3", r.Short(), "a release is named by its version")
	p := Info{Module: "v0.0.0-20261207100000-0123456789ab", Revision: "0123456789abcdef", Go: "go1.26.8"}
	assert.Equal(t, "v0.0.0-20261207100000-0123456789ab", p.Short(), "a pseudo-version names its revision")
}

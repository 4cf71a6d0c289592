// Package version says which tamperguard is running: the module version, the VCS revision
// and time it was built from, and the Go version, read from the build information Go
// embeds in every binary. The function's source archive (tamperguard package) has no VCS
// metadata when the buildpack builds it, so package stamps the revision into the archive
// (Stamp), and the deployed function reports it too.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Stamped is set by the archive that tamperguard package writes (a generated file in the
// root package assigns it at init) and by -ldflags "-X …/internal/version.Stamped=…".
// It is "REVISION TIME" (either may be empty), and wins over the build information.
var Stamped string

// Info is what a build knows about itself.
type Info struct {
	Module   string `json:"module"`   // module version: v1.2.3, a pseudo-version, or (devel)
	Revision string `json:"revision"` // VCS revision, "" if unknown
	Time     string `json:"time"`     // VCS commit time (RFC 3339), "" if unknown
	Modified bool   `json:"modified"` // built from a tree with uncommitted changes
	Go       string `json:"go"`
}

var read = sync.OnceValue(func() Info {
	info := Info{Module: "(devel)", Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" {
			info.Module = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.time":
				info.Time = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if Stamped != "" {
		rev, t, _ := strings.Cut(strings.TrimSpace(Stamped), " ")
		info.Revision, info.Time, info.Modified = rev, t, strings.HasSuffix(rev, "-dirty")
	}
	return info
})

// Get returns this build's information.
func Get() Info { return read() }

// Short is one word for logs and alerts: the module version (a release, or a pseudo-version,
// which names its revision), else the revision's first 12 characters.
func (i Info) Short() string {
	if i.Module != "(devel)" || i.Revision == "" {
		return i.Module
	}
	r := i.Revision
	if len(r) > 12 {
		r = r[:12]
	}
	if i.Modified && !strings.HasSuffix(r, "-dirty") {
		r += "-dirty"
	}
	return r
}

// String is the line tamperguard version prints.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tamperguard %s", i.Module)
	if i.Revision != "" {
		fmt.Fprintf(&b, " (revision %s", i.Revision)
		if i.Time != "" {
			fmt.Fprintf(&b, ", %s", i.Time)
		}
		if i.Modified {
			b.WriteString(", modified")
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, " %s %s/%s", i.Go, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

package engine_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goList runs `go list -f format .` on this package (not its tests).
func goList(t *testing.T, format string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go command is needed to list the engine's imports")
	out, err := exec.Command(goBin, "list", "-f", format, ".").Output()
	require.NoError(t, err, "go list")
	return strings.Fields(string(out))
}

// TestCoreImportsNoConfigurationLoader: the engine gets a policy, never the YAML loader (which
// drags in YAML and builds release sources), and it imports no cloud SDK itself: its store is
// an interface that the adapters implement.
func TestCoreImportsNoConfigurationLoader(t *testing.T) {
	deps := goList(t, `{{join .Deps " "}}`)
	require.Contains(t, deps, "github.com/tamperguard/tamperguard/internal/policy", "the listing is the engine's")
	for _, banned := range []string{"gopkg.in/yaml.v3", "github.com/tamperguard/tamperguard/internal/config"} {
		assert.False(t, slices.Contains(deps, banned), "internal/engine depends on %s", banned)
	}

	for _, imp := range goList(t, `{{join .Imports " "}}`) {
		assert.False(t, strings.HasPrefix(imp, "cloud.google.com/") || strings.HasPrefix(imp, "google.golang.org/"),
			"internal/engine imports %s", imp)
	}
}

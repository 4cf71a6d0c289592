package config

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse: any YAML, however hostile (anchors, deep nesting, huge scalars, tabs, BOMs),
// is either a valid configuration or an error that names where it went wrong; never a panic,
// and never a configuration with a rule that has no pinned key.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"rules: []",
		"rules:\n  - bucket: b\n    objects: [x]\n    release: {url: https://e.example/S}\n    keys: {ssh: [\"ssh-ed25519 AAAA\"]}\n",
		"a: &a [*a, *a]\nrules: *a",
		"rules:\n  - bucket: UPPER\n",
		"state: {bucket: x, lease: 1h}\nrules: [{}]",
		strings.Repeat("[", 200),
		"\ufeffrules:\n\t- x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, yamlText string) {
		if len(yamlText) > 64<<10 {
			return
		}
		cfg, err := Parse(Source{Name: "fuzz.yaml", Data: []byte(yamlText), Dir: t.TempDir()})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "configuration fuzz.yaml: ") || !utf8.ValidString(err.Error()) && utf8.ValidString(yamlText) {
				t.Fatalf("error does not name the configuration: %v", err)
			}
			return
		}
		if cfg.Policy == nil || len(cfg.Policy.Rules) == 0 {
			t.Fatalf("a configuration without rules was accepted")
		}
		for i, r := range cfg.Rules {
			if r.PinnedKeys() == nil {
				t.Fatalf("rules[%d] accepted without pinned keys", i)
			}
		}
	})
}

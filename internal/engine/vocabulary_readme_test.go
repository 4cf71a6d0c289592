package engine_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README's table of verdicts, actions and reasons lists exactly the engine's vocabulary,
// each with the meaning the code gives it.
func TestReadmeListsTheVocabulary(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "vocabulary.go", nil, parser.ParseComments)
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	rows := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `verdict` |") || strings.HasPrefix(line, "| `action` |") || strings.HasPrefix(line, "| `reason` |") || strings.HasPrefix(line, "| `restore_verified` |") {
			rows[line] = true
		}
	}
	want := 0
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			typ, ok := vs.Type.(*ast.Ident)
			if !ok || (typ.Name != "Verdict" && typ.Name != "Action" && typ.Name != "Reason" && typ.Name != "Verification") || len(vs.Values) != 1 || vs.Comment == nil {
				continue
			}
			lit, ok := vs.Values[0].(*ast.BasicLit)
			require.True(t, ok)
			value, err := strconv.Unquote(lit.Value)
			require.NoError(t, err)
			meaning := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(vs.Comment.Text()), "//"))
			field := strings.ToLower(typ.Name)
			if typ.Name == "Verification" {
				field = "restore_verified"
			}
			row := "| `" + field + "` | `" + value + "` | " + meaning + " |"
			assert.True(t, rows[row], "README.md lacks the row %s", row)
			want++
		}
	}
	assert.Equal(t, want, len(rows), "README.md lists values the engine does not have")
}

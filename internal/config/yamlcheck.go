package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// checkFields walks the YAML tree against the Go type it decodes into and reports the first
// key that no field takes, with its line and the fields that exist. yaml.v3's KnownFields
// says "not found in type config.rule", which tells a user nothing.
func checkFields(n *yaml.Node, t reflect.Type, where string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := checkFields(c, t, where); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind == yaml.AliasNode {
		return fmt.Errorf("line %d: %s: YAML aliases are not supported in the configuration", n.Line, where)
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return nil
			}
			return fmt.Errorf("line %d: %s: expected a mapping of fields, got %s", n.Line, where, describe(n))
		}
		fields := yamlFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name := k.Value
			if prev, dup := seen[name]; dup {
				return fmt.Errorf("line %d: %s: field %q given twice (first on line %d)", k.Line, where, name, prev)
			}
			seen[name] = k.Line
			ft, ok := fields[name]
			if !ok {
				known := make([]string, 0, len(fields))
				for f := range fields {
					known = append(known, f)
				}
				slices.Sort(known)
				return fmt.Errorf("line %d: %s: unknown field %q (known fields: %s)", k.Line, where, name, strings.Join(known, ", "))
			}
			if err := checkFields(v, ft, join(where, name)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, c := range n.Content {
				if err := checkFields(c, t.Elem(), where+"["+strconv.Itoa(i)+"]"); err != nil {
					return err
				}
			}
		} else if n.Tag != "!!null" {
			return fmt.Errorf("line %d: %s: expected a list, got %s", n.Line, where, describe(n))
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if err := checkFields(n.Content[i+1], t.Elem(), join(where, n.Content[i].Value)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		out[tag] = f.Type
	}
	return out
}

func join(where, name string) string {
	if where == "" {
		return name
	}
	return where + "." + name
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", truncate(n.Value, 40))
	}
}

// nodeAt finds the node at a path of mapping keys and sequence indexes, for error lines.
// When the last step is a mapping key, the key's node is returned: "keys:" is on the line
// a person looks for, its value may start on the next one.
func nodeAt(n *yaml.Node, path ...any) *yaml.Node {
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for i, p := range path {
		if n == nil {
			return nil
		}
		switch p := p.(type) {
		case string:
			var next, key *yaml.Node
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == p {
						key, next = n.Content[i], n.Content[i+1]
					}
				}
			}
			if i == len(path)-1 && key != nil {
				return key
			}
			n = next
		case int:
			if n.Kind != yaml.SequenceNode || p >= len(n.Content) {
				return nil
			}
			n = n.Content[p]
		}
	}
	return n
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

package config

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated table of docs/configuration.md")

var envName = regexp.MustCompile(`DEPOT_[A-Z0-9_]+`)

const (
	docPath    = "../../docs/configuration.md"
	tableStart = "<!-- variables:start -->"
	tableEnd   = "<!-- variables:end -->"
)

// readInCode returns every DEPOT_* name that appears in a string literal of
// the module's non-test Go code.
func readInCode(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(DEPOT_[A-Z0-9_]+)"`)
	found := map[string]bool{}
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// Test-support packages (…test) and benchmarks read test-only variables.
		if d.IsDir() && p != "../.." && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".") ||
			strings.HasSuffix(d.Name(), "test") || d.Name() == "bench" || d.Name() == "e2e") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			found[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func table() string {
	var b strings.Builder
	b.WriteString(tableStart + "\n")
	b.WriteString("| variable | flag | default | meaning |\n| --- | --- | --- | --- |\n")
	vars := append([]Var(nil), All...)
	sort.Slice(vars, func(i, j int) bool { return vars[i].Env < vars[j].Env })
	for _, v := range vars {
		def := "—"
		if v.Default != "" {
			def = "`" + v.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | `--%s` | %s | %s |\n", v.Env, v.Flag(), def, strings.ReplaceAll(v.Usage, "|", "\\|"))
	}
	b.WriteString(tableEnd)
	return b.String()
}

// TestConfigurationDocumented fails when the code reads a variable that
// docs/configuration.md does not document, or the page documents one that
// the code does not read. `go test ./internal/config -update` regenerates the
// table from config.All.
func TestConfigurationDocumented(t *testing.T) {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	i, j := strings.Index(text, tableStart), strings.Index(text, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the %s … %s markers", docPath, tableStart, tableEnd)
	}
	if *update {
		text = text[:i] + table() + text[j+len(tableEnd):]
		if err := os.WriteFile(docPath, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	documented := map[string]bool{}
	for _, m := range envName.FindAllString(text, -1) {
		documented[m] = true
	}
	declared := map[string]bool{}
	for _, v := range All {
		declared[v.Env] = true
	}
	code := readInCode(t)
	for name := range code {
		if !documented[name] {
			t.Errorf("the code reads %s but docs/configuration.md does not document it", name)
		}
		if !declared[name] {
			t.Errorf("the code uses %s, which is not declared in config.All", name)
		}
	}
	for name := range documented {
		if !code[name] {
			t.Errorf("docs/configuration.md documents %s, which the code does not read", name)
		}
	}
	if !strings.Contains(text, table()) {
		t.Errorf("the table in docs/configuration.md is out of date; run go test ./internal/config -update")
	}
}

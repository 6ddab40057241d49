package web_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestWebImportsNoStorage enforces the dependency rule of DESIGN.md §4: the
// web tier depends only on the Files interface, never on the storage drivers
// or the database, so it has nothing with which to store a byte.
func TestWebImportsNoStorage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "depot/web").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps depot/web: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 2 {
		t.Fatalf("go list returned too little to trust: %q", out)
	}
	for _, dep := range deps {
		for _, banned := range []string{"depot/storage", "depot/servicedb", "depot/services", "depot/maintenance"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("depot/web depends on %s", dep)
			}
		}
	}
	// A sanity check that the list is the real dependency list.
	found := false
	for _, dep := range deps {
		found = found || dep == "depot/apiclient" || dep == "depot"
	}
	if !found {
		t.Errorf("depot/web's dependencies do not include depot itself: %v", deps)
	}
}

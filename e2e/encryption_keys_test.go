package e2e

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"depot/internal/crashpoint"
	"depot/servicedb/servicedbtest"
)

// TestKeyRotation rotates the KEK of a cluster's stored versions with
// depot keys rotate, killed (SIGKILL, from inside) after its first object
// and run again: every version ends under the new KEK, the run is audited,
// and services started with the new KEK alone reads every file back.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		oldKEK, newKEK := newKEK(t), newKEK(t)
		c := newCluster(t, clusterOpts{dbURL: e.URL, servicesEnv: map[string]string{"DEPOT_KEK_FILE": oldKEK, "DEPOT_MAINTENANCE": "off"}})
		files := map[string][]byte{"c1/rot/a.txt": markerData(10), "c1/rot/b.txt": markerData(200_000), "c1/rot/c.txt": nil}
		for key, data := range files {
			expectStatus(t, c.do("PUT", "/api/v1/files/"+key, bytes.NewReader(data), nil), http.StatusCreated)
		}
		c.web.stop()
		c.services.stop()
		both := c.servicesEnv(map[string]string{"DEPOT_KEK_FILE": newKEK + "," + oldKEK})
		status := func() string { return depotCLI(t, both, "keys", "status") }
		killed := c.servicesEnv(map[string]string{"DEPOT_KEK_FILE": newKEK + "," + oldKEK, "DEPOTTEST_CRASH_AT": crashpoint.Rewrapped})
		if _, errOut, code := depotCLIResult(killed, "keys", "rotate"); code == 0 {
			t.Fatalf("keys rotate was not killed: %s", errOut)
		}
		lines := strings.Split(status(), "\n")
		if len(lines) < 2 || !strings.HasSuffix(lines[0], "\t1") || !strings.HasSuffix(lines[1], "\t2") {
			t.Fatalf("status after the interrupted rotation:\n%s", strings.Join(lines, "\n"))
		}
		out := depotCLI(t, both, "keys", "rotate")
		if !strings.Contains(out, "re-wrapped 2,") || !strings.Contains(out, " 1, missing 0") {
			t.Fatalf("resumed rotation: %s", out)
		}
		lines = strings.Split(status(), "\n")
		if !strings.HasSuffix(lines[0], "\t3") || !strings.HasSuffix(lines[1], "\t0") {
			t.Fatalf("status after the rotation:\n%s", strings.Join(lines, "\n"))
		}
		if trail := depotCLI(t, c.dbEnv(), "audit", "export"); strings.Count(trail, "keys.rotated") != 1 {
			t.Fatalf("%d keys.rotated records, want 1", strings.Count(trail, "keys.rotated"))
		}
		c.startServices(map[string]string{"DEPOT_KEK_FILE": newKEK, "DEPOT_MAINTENANCE": "off"})
		c.startWeb(c.services.url(), nil)
		for key, data := range files {
			if got := expectStatus(t, c.do("GET", "/api/v1/files/"+key, nil, nil), http.StatusOK); !bytes.Equal(got, data) {
				t.Fatalf("GET %s after the rotation: wrong bytes", key)
			}
		}
		ageDecrypts(t, c, newKEK, "c1/rot/b.txt")
	})
}

// TestEncryptExisting turns encryption at rest on for a cluster that
// stored files unencrypted: depot keys encrypt-existing, killed (SIGKILL,
// from inside) after its first object and run again, leaves every kept
// version encrypted (no plaintext left in the storage), audited; services
// with the KEK then reads every file back.
func TestEncryptExisting(t *testing.T) {
	t.Parallel()
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		c := newCluster(t, clusterOpts{dbURL: e.URL, servicesEnv: map[string]string{"DEPOT_MAINTENANCE": "off"}})
		files := map[string][]byte{"c1/old/a.txt": markerData(10), "c1/old/b.txt": markerData(200_000), "c1/old/c.txt": nil}
		for key, data := range files {
			expectStatus(t, c.do("PUT", "/api/v1/files/"+key, bytes.NewReader(data), nil), http.StatusCreated)
		}
		// A second version of b.txt: old versions are encrypted too.
		expectStatus(t, c.do("PUT", "/api/v1/files/c1/old/b.txt", bytes.NewReader(files["c1/old/b.txt"]), nil), http.StatusCreated)
		c.web.stop()
		c.services.stop()
		kek := newKEK(t)
		env := c.servicesEnv(map[string]string{"DEPOT_KEK_FILE": kek})
		if _, errOut, code := depotCLIResult(env, "serve"); code == 0 || !strings.Contains(errOut, "unencrypted objects") {
			t.Fatalf("services with a KEK over unencrypted objects: exit %d: %s", code, errOut)
		}
		killed := c.servicesEnv(map[string]string{"DEPOT_KEK_FILE": kek, "DEPOTTEST_CRASH_AT": crashpoint.Encrypted})
		if _, errOut, code := depotCLIResult(killed, "keys", "encrypt-existing"); code == 0 {
			t.Fatalf("encrypt-existing was not killed: %s", errOut)
		}
		if out := depotCLI(t, env, "keys", "status"); !strings.Contains(out, "not-encrypted\t3\n") {
			t.Fatalf("status after the interrupted run:\n%s", out)
		}
		if out := depotCLI(t, env, "keys", "encrypt-existing"); !strings.Contains(out, "encrypted 3, already encrypted 1,") {
			t.Fatalf("resumed run: %s", out)
		}
		if out := depotCLI(t, env, "keys", "status"); !strings.Contains(out, "\t4\nother-key\t0\nnot-encrypted\t0\n") {
			t.Fatalf("status after the migration:\n%s", out)
		}
		noPlaintext(t, c, c.storageDir())
		if trail := depotCLI(t, c.dbEnv(), "audit", "export"); strings.Count(trail, "storage.encrypted") != 1 {
			t.Fatalf("%d storage.encrypted records, want 1", strings.Count(trail, "storage.encrypted"))
		}
		c.startServices(map[string]string{"DEPOT_KEK_FILE": kek, "DEPOT_MAINTENANCE": "off"})
		c.startWeb(c.services.url(), nil)
		for key, data := range files {
			if got := expectStatus(t, c.do("GET", "/api/v1/files/"+key, nil, nil), http.StatusOK); !bytes.Equal(got, data) {
				t.Fatalf("GET %s after the migration: wrong bytes", key)
			}
		}
		if _, errOut, code := depotCLIResult(c.servicesEnv(map[string]string{"DEPOT_KEK_FILE": kek}), "verify"); code != 0 {
			t.Fatalf("verify after the migration: exit %d: %s", code, errOut)
		}
	})
}

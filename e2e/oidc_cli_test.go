package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"depot"
	"depot/client"
)

// TestOIDCDeviceLogin runs depot login end to end: the command shows a
// code, the test plays the person who approves it at the provider's device
// page, the login is stored 0600 in the user's configuration directory and
// used (and renewed with its refresh token) by depot upload and ls without
// a token; a personal access token still wins when given; depot logout
// records the sign-out, has the provider revoke the refresh token and
// deletes the login.
func TestOIDCDeviceLogin(t *testing.T) {
	// The CLI's ID tokens live 90 s, less than the 2 minutes before expiry
	// at which a login is renewed: every command renews it.
	s := newSSOCluster(t, ssoOpts{cliTokenLifetime: 90 * time.Second})
	dir := t.TempDir()
	cfgHome := filepath.Join(dir, "config")
	env := map[string]string{"DEPOT_URL": s.public, "XDG_CONFIG_HOME": cfgHome, "XDG_CACHE_HOME": filepath.Join(dir, "cache")}
	depotCLI(t, s.dbEnv(), "users", "add", "alice@example.org")
	depotCLI(t, s.dbEnv(), "cohorts", "grant", "alice@example.org", "c1", "manager")
	head := auditHead(t, s.db)

	// depot login: read the code it shows, approve it as the person would.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "login")
	cmd.Env = baseEnv(env)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	codeRE := regexp.MustCompile(`open (\S+) in a browser and enter the code (\S+)`)
	sc := bufio.NewScanner(stdout)
	var printed []string
	approved := make(chan error, 1)
	for sc.Scan() {
		line := sc.Text()
		printed = append(printed, line)
		if m := codeRE.FindStringSubmatch(line); m != nil {
			if !strings.HasPrefix(m[1], s.idp.Issuer) {
				t.Errorf("verification URL %s is not the provider's", m[1])
			}
			go func() { approved <- s.idp.ApproveDevice(ctx, m[2], "u-alice", ssoPassword) }()
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("depot login: %v\n%s\n%s", err, strings.Join(printed, "\n"), stderr.String())
	}
	if err := <-approved; err != nil {
		t.Fatal(err)
	}
	out := strings.Join(printed, "\n")
	if !strings.Contains(out, "Signed in to "+s.public+" as alice@example.org") {
		t.Fatalf("depot login printed %q", out)
	}

	// Stored for the owner only.
	path := filepath.Join(cfgHome, "depot", "login.json")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stored login: %v, mode %v", err, fi.Mode())
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("login directory: %v %v", err, di.Mode())
	}
	first := storedLoginOf(t, path, s.public)
	if first.Refresh == "" || first.User != "alice@example.org" || first.ClientID != ssoCLIClient {
		t.Fatalf("stored login: %+v", first)
	}
	signIns := s.records(t, head, depot.ActionSignIn)
	if len(signIns) != 1 || signIns[0].Metadata["client"] != "cli" || signIns[0].Metadata["sub"] != "u-alice" {
		t.Fatalf("sign-in records: %+v", signIns)
	}
	linked := s.records(t, head, depot.ActionIdentityLinked, depot.ActionUserCreated)
	if len(linked) != 1 || linked[0].Action != depot.ActionIdentityLinked || linked[0].Actor != "alice@example.org" {
		t.Fatalf("the first sign-in did not bind the existing user: %+v", linked)
	}

	// depot upload with the login, renewing it on the way.
	src := filepath.Join(dir, "labs.csv")
	data, sum := payloadBytes(31, 2<<20+5)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := depotCLI(t, env, "upload", src, "--cohort", "c1"); !strings.Contains(out, sum) {
		t.Fatalf("upload printed %q", out)
	}
	renewed := storedLoginOf(t, path, s.public)
	if renewed.Refresh == first.Refresh || renewed.IDToken == first.IDToken {
		t.Fatal("the login was not renewed with its refresh token")
	}
	if cliRefreshWorks(t, s, first.Refresh) {
		t.Fatal("the first refresh token still works: the renewal did not use it")
	}
	done := completedRecords(t, s.cluster, "c1/labs.csv")
	if len(done) != 1 || done[0].AuthMethod != "oidc" || done[0].Actor != "alice@example.org" || done[0].Metadata["sub"] != "u-alice" {
		t.Fatalf("upload record: %+v", done)
	}
	// With one stored login, DEPOT_URL may be left out.
	if out := depotCLI(t, map[string]string{"XDG_CONFIG_HOME": cfgHome}, "ls", "c1"); !strings.Contains(out, "labs.csv") {
		t.Fatalf("ls with the stored login printed %q", out)
	}
	// A personal access token wins over the stored login (scripts).
	before := auditHead(t, s.db)
	tokEnv := map[string]string{"DEPOT_URL": s.public, "XDG_CONFIG_HOME": cfgHome, "DEPOT_TOKEN": s.token}
	depotCLI(t, tokEnv, "ls", "c1")
	for _, ev := range auditAfter(t, s.db, before) {
		if ev.Action == depot.ActionList && (ev.AuthMethod != "token" || ev.Actor != "alice") {
			t.Fatalf("with DEPOT_TOKEN the listing ran as %s/%s", ev.AuthMethod, ev.Actor)
		}
	}

	// depot logout.
	before = auditHead(t, s.db)
	last := storedLoginOf(t, path, s.public)
	if out := depotCLI(t, env, "logout"); !strings.Contains(out, "the identity provider revoked the login") {
		t.Fatalf("logout printed %q", out)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the stored login survived depot logout: %v", err)
	}
	if cliRefreshWorks(t, s, last.Refresh) {
		t.Fatal("the refresh token still works after depot logout")
	}
	if out := s.records(t, before, depot.ActionSignOut); len(out) != 1 || out[0].Metadata["client"] != "cli" || out[0].Actor != "alice@example.org" {
		t.Fatalf("sign-out records: %+v", out)
	}
	if _, _, code := depotCLIResult(env, "ls", "c1"); code != 2 {
		t.Fatalf("ls after logout exited %d, want 2 (not signed in)", code)
	}
}

func storedLoginOf(t *testing.T, path, url string) client.Login {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Logins map[string]client.Login }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Logins[url]
}

// cliRefreshWorks reports whether the provider honours a refresh token of
// depot login's (public) client.
func cliRefreshWorks(t *testing.T, s *ssoCluster, refresh string) bool {
	t.Helper()
	p, err := oidc.NewProvider(context.Background(), s.idp.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: ssoCLIClient, Endpoint: p.Endpoint()}
	_, err = conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: refresh}).Token()
	return err == nil
}

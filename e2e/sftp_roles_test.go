package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestSFTPRolesAndNames: over SFTP each role may do what it may do over
// HTTP and nothing more; a revoked key, a key signing in under another
// user's name and a shell command are refused; hostile names get the key
// policy of every entrance (NFC, spoofing characters refused) and ".."
// cannot leave the tree.
func TestSFTPRolesAndNames(t *testing.T) {
	s := newSFTPCluster(t, nil)
	db := s.dbEnv()
	keys := map[string]string{}
	for user, role := range map[string]string{"bob": "uploader", "carol": "reader", "dave": ""} {
		depotCLI(t, db, "users", "add", user)
		if role != "" {
			depotCLI(t, db, "cohorts", "grant", user, "c1", role)
		}
		keys[user] = s.newUserKey(t, user)
	}
	local := t.TempDir()
	f, sum := writePayload(t, local, "f.csv", 5, 300000)
	s.mustSFTP(t, "put "+f+" /c1/by-alice.csv")

	as := func(user string, cmds ...string) (string, error) {
		return s.sftpBatch(t, user, keys[user], cmds...)
	}
	for _, tc := range []struct {
		user, cmd string
		ok        bool
	}{
		{"bob", "put " + f + " /c1/by-bob.csv", true},
		{"bob", "ls -l /c1", true},
		{"bob", "get /c1/by-alice.csv " + filepath.Join(local, "bob.csv"), false},
		{"bob", "rm /c1/by-alice.csv", false},
		{"bob", "rename /c1/by-alice.csv /c1/moved.csv", false},
		{"carol", "put " + f + " /c1/by-carol.csv", false},
		{"carol", "get /c1/by-alice.csv " + filepath.Join(local, "carol.csv"), true},
		{"carol", "rm /c1/by-alice.csv", false},
		{"dave", "put " + f + " /c1/by-dave.csv", false},
		{"dave", "get /c1/by-alice.csv " + filepath.Join(local, "dave.csv"), false},
		{"dave", "ls /c1", false},
	} {
		out, err := as(tc.user, tc.cmd)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %s: err %v, want ok=%v\n%s", tc.user, tc.cmd, err, tc.ok, out)
		}
	}
	if _, got := s.fileSHA(t, "c1/by-bob.csv"); got != sum {
		t.Errorf("bob's upload: SHA-256 %s, want %s", got, sum)
	}
	if _, got := hashFile(t, filepath.Join(local, "carol.csv")); got != sum {
		t.Errorf("carol's download: SHA-256 %s, want %s", got, sum)
	}
	if out, err := as("dave", "ls /"); err != nil || strings.Contains(out, "c1") {
		t.Errorf("dave sees the cohorts %q (%v)", out, err)
	}

	// Refused sign-ins: a revoked key, alice's key under bob's name.
	fp := strings.Fields(depotCLI(t, db, "users", "keys", "carol"))
	var carolFP string
	for _, w := range fp {
		if strings.HasPrefix(w, "SHA256:") {
			carolFP = w
		}
	}
	depotCLI(t, db, "users", "remove-key", "carol", carolFP)
	if out, err := as("carol", "ls /"); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("a revoked key signed in: %v\n%s", err, out)
	}
	if out, err := s.sftpBatch(t, "bob", s.key, "ls /"); err == nil {
		t.Errorf("alice's key signed in as bob:\n%s", out)
	}
	audit := depotCLI(t, db, "audit", "export")
	for _, want := range []string{`"ssh_key.added"`, `"ssh_key.removed"`, carolFP, `"auth.failed"`, `"access.denied"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit trail lacks %s", want)
		}
	}
	// No shell, no command.
	ssh := append(sshPortOpt(s.sshOpts(s.key)), "alice@127.0.0.1", "cat /etc/passwd")
	if out, err := exec.Command("ssh", ssh...).CombinedOutput(); err == nil || !strings.Contains(string(out), "SFTP only") {
		t.Errorf("ssh command: %v\n%s", err, out)
	}

	// Names: NFD stored as NFC; spoofing names refused; ".." stays inside.
	s.mustSFTP(t, `put `+f+` "/c1/cafe`+"\u0301"+`.csv"`)
	if _, got := s.fileSHA(t, "c1/caf\u00e9.csv"); got != sum {
		t.Errorf("NFD name not stored as NFC")
	}
	for _, name := range []string{"\u202egpj.exe", "a\u200bb.csv", "\uff0e\uff0e", "CON", "trailing.", "a\u2215b.csv"} {
		if out, err := s.sftpBatch(t, "alice", s.key, `put `+f+` "/c1/`+name+`"`); err == nil {
			t.Errorf("name %q accepted:\n%s", name, out)
		}
	}
	s.mustSFTP(t, "put "+f+" /c1/../c1/x/../../c1/dots.csv")
	if _, got := s.fileSHA(t, "c1/dots.csv"); got != sum {
		t.Errorf("a path with .. did not resolve inside the tree")
	}
	if out, err := s.sftpBatch(t, "alice", s.key, "get /../../../etc/passwd "+filepath.Join(local, "passwd")); err == nil {
		t.Errorf("/../../../etc/passwd was served:\n%s", out)
	}
}

// sshPortOpt turns sftp's -P port option into ssh's -p.
func sshPortOpt(opts []string) []string {
	out := append([]string(nil), opts...)
	for i, o := range out {
		if o == "-P" {
			out[i] = "-p"
		}
	}
	return out
}

// TestSFTPSignInThrottled: failed SFTP sign-ins (an unregistered key, a
// wrong token as password) count against the client's address in the
// throttle every credential shares: once it blocks, even alice's
// registered key is refused, and the block is audited.
func TestSFTPSignInThrottled(t *testing.T) {
	s := newSFTPCluster(t, nil)
	_, stranger, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(stranger)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(auth ssh.AuthMethod) error {
		conn, err := ssh.Dial("tcp", s.addr, &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{auth},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		if err == nil {
			conn.Close()
		}
		return err
	}
	// A token through keyboard-interactive (FileZilla, WinSCP) signs in.
	tokenPrompt := ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
		return []string{s.token}, nil
	})
	if err := dial(tokenPrompt); err != nil {
		t.Fatalf("a token through keyboard-interactive: %v", err)
	}
	for i := range 21 {
		auth := ssh.PublicKeys(signer)
		if i%2 == 1 {
			auth = ssh.Password("dpt_" + strings.Repeat("b", 52))
		}
		if err := dial(auth); err == nil {
			t.Fatalf("attempt %d with a wrong credential signed in", i)
		}
	}
	if out, err := s.sftpBatch(t, "alice", s.key, "ls /"); err == nil {
		t.Fatalf("a blocked address signed in with a good key:\n%s", out)
	}
	audit := depotCLI(t, s.dbEnv(), "audit", "export")
	if !strings.Contains(audit, `"auth.throttled"`) || !strings.Contains(audit, ssh.FingerprintSHA256(signer.PublicKey())) {
		t.Fatalf("the audit trail lacks the throttle or the stranger key's fingerprint")
	}
}

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// sftpCluster is a cluster whose web process also serves SFTP, with the
// host key `depot certs dev` writes, and an SSH key registered to alice.
type sftpCluster struct {
	*cluster
	addr       string // host:port of the SFTP listener
	dir        string
	key        string // alice's private key file
	knownHosts string
}

// needSFTPClients skips the test when a client is missing (scripts/test.sh
// installs them: scripts/install-sftp-clients.sh).
func needSFTPClients(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/install-sftp-clients.sh)", tool)
		}
	}
}

func newSFTPCluster(t *testing.T, webEnv map[string]string) *sftpCluster {
	t.Helper()
	return newSFTPClusterOpts(t, clusterOpts{webEnv: webEnv})
}

// newSFTPClusterOpts is newSFTPCluster with every cluster option.
func newSFTPClusterOpts(t *testing.T, o clusterOpts) *sftpCluster {
	t.Helper()
	needSFTPClients(t, "sftp", "ssh-keygen")
	dir := t.TempDir()
	depotCLI(t, nil, "certs", "dev", "--out", dir)
	hostKey := filepath.Join(dir, "sftp_host_ed25519_key")
	env := map[string]string{"DEPOT_SFTP_ADDR": "127.0.0.1:0", "DEPOT_SFTP_HOST_KEY_FILE": hostKey}
	for k, v := range o.webEnv {
		env[k] = v
	}
	o.webEnv = env
	c := newCluster(t, o)
	s := &sftpCluster{cluster: c, dir: dir, addr: sftpAddr(t, c.web)}
	s.key = s.newUserKey(t, "alice")
	pem, err := os.ReadFile(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.addr)
	s.knownHosts = filepath.Join(dir, "known_hosts")
	line := fmt.Sprintf("[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(signer.PublicKey()))
	if err := os.WriteFile(s.knownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// newUserKey makes an Ed25519 key pair and registers it to user; it
// returns the private key file.
func (s *sftpCluster) newUserKey(t *testing.T, user string) string {
	t.Helper()
	f := filepath.Join(s.dir, "id_"+user+fmt.Sprint(time.Now().UnixNano()))
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", user+"@test", "-f", f).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	depotCLI(t, s.dbEnv(), "users", "add-key", user, f+".pub")
	return f
}

// sftpAddr reads the SFTP listener's address from web's log.
func sftpAddr(t *testing.T, p *proc) string {
	t.Helper()
	for _, line := range strings.Split(p.logs(), "\n") {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "sftp listening" {
			return rec.Addr
		}
	}
	t.Fatalf("web did not log its SFTP address:\n%s", p.logs())
	return ""
}

// sshOpts are the OpenSSH options of every test client: the host key is
// checked, nothing is asked interactively, and only the given key is used.
func (s *sftpCluster) sshOpts(key string) []string {
	_, port, _ := net.SplitHostPort(s.addr)
	return []string{"-P", port, "-i", key, "-o", "UserKnownHostsFile=" + s.knownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=10"}
}

// sftpBatch runs OpenSSH sftp -b with commands as user with key; it
// returns the combined output and the error (non-nil if a command failed).
func (s *sftpCluster) sftpBatch(t *testing.T, user, key string, commands ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append(s.sshOpts(key), "-b", "-", user+"@127.0.0.1")
	cmd := exec.CommandContext(ctx, "sftp", args...)
	cmd.Stdin = strings.NewReader(strings.Join(commands, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustSFTP is sftpBatch as alice that must succeed.
func (s *sftpCluster) mustSFTP(t *testing.T, commands ...string) string {
	t.Helper()
	out, err := s.sftpBatch(t, "alice", s.key, commands...)
	if err != nil {
		t.Fatalf("sftp %q: %v\n%s", commands, err, out)
	}
	return out
}

// fileSHA returns the size and SHA-256 of a stored file, read through the
// HTTP API (404: -1).
func (s *sftpCluster) fileSHA(t *testing.T, key string) (int64, string) {
	t.Helper()
	resp := s.do("GET", "/api/v1/files/"+key, nil, nil)
	defer resp.Body.Close()
	if resp.StatusCode == 404 {
		return -1, ""
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", key, resp.StatusCode, b)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return n, hex.EncodeToString(h.Sum(nil))
}

// writePayload writes n bytes of seeded payload to a file in dir and
// returns its path and SHA-256.
func writePayload(t *testing.T, dir, name string, seed uint64, n int64) (string, string) {
	t.Helper()
	r, sum := payload(seed, n)
	f := filepath.Join(dir, name)
	out, err := os.Create(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, r); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return f, sum()
}

// waitFor polls cond every 50 ms until it holds, failing after within.
func waitFor(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

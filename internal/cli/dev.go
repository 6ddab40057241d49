package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"depot"
	"depot/internal/config"
	"depot/internal/httpauth"
)

func devCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "run the whole system on this machine: services and web as two processes, SQLite, local storage",
		Args:  cobra.NoArgs,
	}
	bind(cmd, config.Addr, config.InternalAddr, config.DataDir, config.LogLevel, config.KEKFile)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runDev(cmd.Context(), settings{e: e, cmd: cmd})
	}
	return cmd
}

func runDev(ctx context.Context, s settings) error {
	dataDir, err := filepath.Abs(s.get(config.DataDir))
	if err != nil {
		return err
	}
	filesDir := filepath.Join(dataDir, "files")
	if err := os.MkdirAll(filesDir, 0o750); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	dbURL := "sqlite://" + filepath.Join(dataDir, "depot.db")
	token, err := devAccount(ctx, dbURL, filepath.Join(dataDir, "dev-token"))
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	key := httpauth.NewKey() // 32 random bytes: depot refuses weaker keys
	addr, internalAddr := s.get(config.Addr), s.get(config.InternalAddr)
	common := []string{"DEPOT_LOG_LEVEL=" + s.get(config.LogLevel)}
	svcEnv := append(common,
		"DEPOT_ROLE=services", "DEPOT_INTERNAL_ADDR="+internalAddr, "DEPOT_INTERNAL_KEYS="+key,
		"DEPOT_STORAGE_URL=file://"+filesDir, "DEPOT_DATABASE_URL="+dbURL)
	if kek := s.get(config.KEKFile); kek != "" { // encryption at rest: off in dev unless a KEK is given
		svcEnv = append(svcEnv, "DEPOT_KEK_FILE="+kek)
	}
	svc, err := startChild(ctx, s, self, svcEnv)
	if err != nil {
		return err
	}
	defer svc.stop()
	if err := waitReady(ctx, "http://"+internalAddr+"/readyz", svc); err != nil {
		return fmt.Errorf("services tier did not start: %w", err)
	}
	webp, err := startChild(ctx, s, self, append(common,
		"DEPOT_ROLE=web", "DEPOT_ADDR="+addr, "DEPOT_SERVICES_URL=http://"+internalAddr, "DEPOT_INTERNAL_KEY="+key))
	if err != nil {
		return err
	}
	defer webp.stop()
	if err := waitReady(ctx, "http://"+addr+"/readyz", webp); err != nil {
		return fmt.Errorf("web tier did not start: %w", err)
	}
	fmt.Fprintf(s.e.stdout, "depot is running (services pid %d, web pid %d)\n", svc.cmd.Process.Pid, webp.cmd.Process.Pid)
	fmt.Fprintf(s.e.stdout, "  web:      http://%s/\n  services: http://%s/ (internal)\n", addr, internalAddr)
	fmt.Fprintf(s.e.stdout, "  data:     %s\n  token:    %s (also in %s)\n", dataDir, token, filepath.Join(dataDir, "dev-token"))
	fmt.Fprintf(s.e.stdout, "  try:      curl -T FILE -H 'Authorization: Bearer %s' http://%s/api/v1/files/dev/FILE\n", token, addr)
	fmt.Fprintln(s.e.stdout, "Press Ctrl-C to stop.")
	select {
	case <-ctx.Done():
		return nil
	case <-svc.done:
		return errors.New("the services process exited")
	case <-webp.done:
		return errors.New("the web process exited")
	}
}

// devAccount makes sure the dev user manages cohort dev and returns a valid
// token for it, reusing the one in tokenFile while it still works.
func devAccount(ctx context.Context, dbURL, tokenFile string) (string, error) {
	db, err := openDatabase(ctx, dbURL)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if b, err := os.ReadFile(tokenFile); err == nil {
		tok := strings.TrimSpace(string(b))
		if _, err := db.Authenticate(ctx, tok); err == nil {
			return tok, nil
		}
	}
	if err := db.CreateUser(ctx, "dev", false); err != nil && depot.ErrorCode(err) != depot.CodeConflict {
		return "", fmt.Errorf("create dev user: %w", err)
	}
	if err := db.CreateCohort(ctx, "dev"); err != nil && depot.ErrorCode(err) != depot.CodeConflict {
		return "", fmt.Errorf("create dev cohort: %w", err)
	}
	if err := db.Grant(ctx, "dev", "dev", depot.RoleManager); err != nil {
		return "", fmt.Errorf("grant dev: %w", err)
	}
	tok, _, err := db.CreateToken(ctx, "dev", "depot dev", 30*24*time.Hour)
	if err != nil {
		return "", fmt.Errorf("create dev token: %w", err)
	}
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write dev token: %w", err)
	}
	return tok, nil
}

type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startChild runs "depot serve" with env added to a copy of this process's
// environment without any DEPOT_* variable, so that each tier gets only its
// own settings.
func startChild(ctx context.Context, s settings, self string, env []string) (*child, error) {
	cmd := exec.Command(self, "serve")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEPOT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = s.e.stderr, s.e.stderr
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start child: %w", err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	return c, nil
}

// stop sends SIGTERM and waits; after 35 s it kills.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(35 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func waitReady(ctx context.Context, url string, c *child) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return errors.New("process exited")
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("not ready after 30 s")
}

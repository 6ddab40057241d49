package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"

	"depot/internal/config"
	"depot/web"
)

// startSFTP starts the SFTP entrance of web when DEPOT_SFTP_ADDR is set;
// stop ends it (closing its connections) and waits for it.
func startSFTP(ctx context.Context, s settings, srv *web.Server, log *slog.Logger) (stop func(), err error) {
	addr := s.get(config.SFTPAddr)
	if addr == "" {
		return func() {}, nil
	}
	keys, err := loadHostKeys(s.get(config.SFTPHostKeyFile))
	if err != nil {
		return nil, err
	}
	maxConns, err := s.int(config.SFTPMaxConns)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ServeSFTP(ctx, ln, web.SFTPConfig{HostKeys: keys, MaxConnections: maxConns}); err != nil {
			log.Error("sftp listener stopped", "err", err)
		}
	}()
	fps := make([]string, len(keys))
	for i, k := range keys {
		fps[i] = ssh.FingerprintSHA256(k.PublicKey())
	}
	log.Info("sftp listening", "addr", ln.Addr().String(), "host_keys", strings.Join(fps, ","))
	return func() { cancel(); <-done }, nil
}

// loadHostKeys reads the comma-separated private host key files.
func loadHostKeys(files string) ([]ssh.Signer, error) {
	if strings.TrimSpace(files) == "" {
		return nil, usageErr("refusing to start: %s needs %s", config.SFTPAddr.Env, config.SFTPHostKeyFile.Env)
	}
	var out []ssh.Signer
	for _, f := range strings.Split(files, ",") {
		pem, err := os.ReadFile(strings.TrimSpace(f))
		if err != nil {
			return nil, usageErr("%s: %v", config.SFTPHostKeyFile.Env, err)
		}
		k, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			return nil, usageErr("%s: %s: %v", config.SFTPHostKeyFile.Env, f, err)
		}
		out = append(out, k)
	}
	return out, nil
}

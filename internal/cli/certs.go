package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"depot/internal/tlsconf"
)

func certsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "certs", Short: "TLS certificates"}
	dev := &cobra.Command{
		Use:   "dev",
		Short: "create a throw-away CA and certificates for development and tests (never for production)",
		Args:  cobra.NoArgs,
	}
	out := dev.Flags().String("out", "./depot-certs", "directory to write the PEM files to")
	hosts := dev.Flags().StringSlice("hosts", []string{"127.0.0.1", "localhost", "::1"}, "host names and IP addresses the server certificates are valid for")
	days := dev.Flags().Int("days", 30, "validity in days (they expire after it: renew and restart before)")
	dev.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := tlsconf.WriteDev(*out, *hosts, time.Duration(*days)*24*time.Hour); err != nil {
			return fmt.Errorf("write certificates: %w", err)
		}
		for _, f := range tlsconf.DevFiles {
			fmt.Fprintln(e.stdout, filepath.Join(*out, f))
		}
		hostKey, err := writeSFTPHostKey(*out)
		if err != nil {
			return fmt.Errorf("write the SFTP host key: %w", err)
		}
		fmt.Fprintln(e.stdout, hostKey)
		until := time.Now().Add(time.Duration(*days)*24*time.Hour - time.Hour).UTC()
		fmt.Fprintf(e.stderr, "these certificates expire in %d days, on %s: run depot certs dev again and restart both tiers before then "+
			"(depot_certificate_expiry_seconds and the alert DepotCertificateExpiringSoon warn 14 days ahead)\n", *days, until.Format("2006-01-02 15:04 UTC"))
		return nil
	}
	cmd.AddCommand(dev)
	return cmd
}

// SFTPHostKeyFile is the SFTP host key depot certs dev writes in its
// directory (DEPOT_SFTP_HOST_KEY_FILE).
const SFTPHostKeyFile = "sftp_host_ed25519_key"

// writeSFTPHostKey writes an Ed25519 SSH host key (OpenSSH format, mode
// 0600) in dir, unless one is there: clients that trusted it keep trusting
// it when the certificates are renewed.
func writeSFTPHostKey(dir string) (string, error) {
	name := filepath.Join(dir, SFTPHostKeyFile)
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "depot sftp host key")
	if err != nil {
		return "", err
	}
	return name, os.WriteFile(name, pem.EncodeToMemory(block), 0o600)
}

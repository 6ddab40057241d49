package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"depot/internal/httpauth"
)

// TestMaintenanceSettingsRefused: settings that used to be silently
// replaced by a default are refused with a message naming them —
// DEPOT_STRAY_GRACE=0s meant 1 h — and so are unknown webhook formats,
// by the commands and by the services role alike.
func TestMaintenanceSettingsRefused(t *testing.T) {
	dir := t.TempDir()
	base := map[string]string{
		"DEPOT_DATABASE_URL":  "sqlite://" + filepath.Join(dir, "depot.db"),
		"DEPOT_STORAGE_URL":   "file://" + filepath.Join(dir, "files"),
		"DEPOT_INTERNAL_KEYS": httpauth.NewKey(), "DEPOT_INTERNAL_ADDR": "127.0.0.1:0",
	}
	for _, tc := range []struct {
		name, value, mention string
	}{
		{"DEPOT_STRAY_GRACE", "0s", "DEPOT_STRAY_GRACE must be at least 1s"},
		{"DEPOT_STRAY_GRACE", "500ms", "DEPOT_STRAY_GRACE must be at least 1s"},
		{"DEPOT_CLEANUP_LEASE", "0s", "DEPOT_CLEANUP_LEASE must be at least 1s"},
		{"DEPOT_ALERT_FORMAT", "pager", `DEPOT_ALERT_FORMAT: unknown format "pager"`},
		{"DEPOT_REPORT_FORMAT", "alertmanager", `DEPOT_REPORT_FORMAT: unknown format "alertmanager"`},
	} {
		for _, args := range [][]string{{"cleanup", "--dry-run"}, {"serve", "--role", "services"}} {
			env := map[string]string{tc.name: tc.value}
			for k, v := range base {
				env[k] = v
			}
			var out, errOut bytes.Buffer
			code := Run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut)
			if code != ExitUsage || !strings.Contains(errOut.String(), tc.mention) {
				t.Errorf("%s=%s depot %s: exit %d, %q; want %d and %q", tc.name, tc.value, strings.Join(args, " "), code, errOut.String(), ExitUsage, tc.mention)
			}
		}
	}
}

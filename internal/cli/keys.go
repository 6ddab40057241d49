package cli

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"time"

	"depot/internal/config"
)

// keyReloadInterval is how often a key file is checked for a rotation.
const keyReloadInterval = 2 * time.Second

// watchKeyFile re-reads the key file named by fileVar every few seconds and
// calls apply with the new keys when they change, so that internal keys are
// rotated without a restart (and so without downtime). It does nothing when
// keys come from the environment instead of a file.
func watchKeyFile(ctx context.Context, s settings, listVar, fileVar config.Var, log *slog.Logger, apply func([]string)) {
	if s.get(fileVar) == "" {
		return
	}
	current, _ := s.keys(listVar, fileVar)
	go func() {
		t := time.NewTicker(keyReloadInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := os.Stat(s.get(fileVar)); err != nil {
				continue
			}
			keys, err := s.keys(listVar, fileVar)
			if err != nil || len(keys) == 0 {
				log.Warn("internal key file unreadable or empty; keeping the current keys")
				continue
			}
			if !slices.Equal(keys, current) {
				current = keys
				apply(keys)
				log.Info("internal keys reloaded", "keys", len(keys))
			}
		}
	}()
}

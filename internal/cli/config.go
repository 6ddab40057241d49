package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"depot/internal/config"
	"depot/internal/httpauth"
)

// settings resolves configuration variables for one command: a flag that was
// set wins, then the environment variable, then the default.
type settings struct {
	e   *env
	cmd *cobra.Command
}

// bind registers the flags of vars on cmd.
func bind(cmd *cobra.Command, vars ...config.Var) {
	for _, v := range vars {
		usage := v.Usage + " (" + v.Env + ")"
		if v.Default != "" {
			usage += " (default " + v.Default + ")"
		}
		cmd.Flags().String(v.Flag(), "", usage)
	}
}

func (s settings) get(v config.Var) string {
	if f := s.cmd.Flags().Lookup(v.Flag()); f != nil && f.Changed {
		return f.Value.String()
	}
	if val := s.e.getenv(v.Env); val != "" {
		return val
	}
	return v.Default
}

// isSet reports whether v was given by flag or environment.
func (s settings) isSet(v config.Var) bool {
	if f := s.cmd.Flags().Lookup(v.Flag()); f != nil && f.Changed {
		return true
	}
	return s.e.getenv(v.Env) != ""
}

func (s settings) duration(v config.Var) (time.Duration, error) {
	d, err := time.ParseDuration(s.get(v))
	if err != nil || d < 0 {
		return 0, usageErr("%s: %q is not a duration (like 30s or 24h)", v.Env, s.get(v))
	}
	return d, nil
}

func (s settings) int(v config.Var) (int, error) {
	n, err := strconv.Atoi(s.get(v))
	if err != nil || n < 0 {
		return 0, usageErr("%s: %q is not a non-negative integer", v.Env, s.get(v))
	}
	return n, nil
}

// keys reads a list of keys from the comma-separated variable or the file
// variable (one key per line; the file wins when both are set). Keys are
// secrets: they come from the environment or a file only, never from a
// flag (the command line is visible to every user of the host in ps and
// /proc, and to profilers); and each must hold at least 32 random bytes
// (httpauth.CheckKey).
func (s settings) keys(list, file config.Var) ([]string, error) {
	if f := s.cmd.Flags().Lookup(list.Flag()); f != nil && f.Changed {
		return nil, usageErr("refusing to start: --%s would show the key to every user of this host (ps, /proc); set %s or %s instead", list.Flag(), list.Env, file.Env)
	}
	raw := s.get(list)
	if path := s.get(file); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, usageErr("%s: cannot read the key file: %v", file.Env, err)
		}
		raw = strings.ReplaceAll(string(b), "\n", ",")
	}
	var keys []string
	for i, k := range strings.Split(raw, ",") {
		if k = strings.TrimSpace(k); k != "" {
			if err := httpauth.CheckKey(k); err != nil {
				return nil, usageErr("refusing to start: key %d of %s: %v", i+1, keySource(s, list, file), err)
			}
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// keySource names where keys were read from, for messages.
func keySource(s settings, list, file config.Var) string {
	if s.get(file) != "" {
		return file.Env
	}
	return list.Env
}

func (s settings) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(s.get(config.LogLevel))); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(s.e.stderr, &slog.HandlerOptions{Level: lvl}))
}

func (s settings) nodeName() string {
	if n := s.get(config.NodeName); n != "" {
		return n
	}
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%s:%d", h, os.Getpid())
}

package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"depot/internal/config"
	"depot/maintenance"
	"depot/scan"
)

// scanGate returns the malware scan configured by DEPOT_SCAN (nil when
// off), refusing settings it cannot honour.
func scanGate(s settings, log *slog.Logger) (*scan.Gate, error) {
	switch s.get(config.Scan) {
	case "off", "":
		return nil, nil
	case "clamav":
	default:
		return nil, usageErr("%s must be off or clamav", config.Scan.Env)
	}
	timeout, err := s.duration(config.ScanTimeout)
	if err != nil {
		return nil, err
	}
	client, err := scan.NewClient(s.get(config.ClamdAddr), timeout)
	if err != nil {
		return nil, usageErr("refusing to start: %s: %v", config.ClamdAddr.Env, err)
	}
	p := scan.Policy{Oversize: s.get(config.ScanOversize)}
	switch s.get(config.ScanFailOpen) {
	case "on":
		p.FailOpen = true
	case "off", "":
	default:
		return nil, usageErr("%s must be on or off", config.ScanFailOpen.Env)
	}
	if p.Oversize != scan.OversizeRefuse && p.Oversize != scan.OversizeUnscanned {
		return nil, usageErr("%s must be %s or %s", config.ScanOversize.Env, scan.OversizeRefuse, scan.OversizeUnscanned)
	}
	if p.MaxSize, err = strconv.ParseInt(s.get(config.ScanMaxSize), 10, 64); err != nil || p.MaxSize < 0 {
		return nil, usageErr("%s: %q is not a number of bytes", config.ScanMaxSize.Env, s.get(config.ScanMaxSize))
	}
	if p.Streams, err = s.int(config.ScanStreams); err != nil {
		return nil, err
	}
	return scan.NewGate(client, p, log.With("component", "scan")), nil
}

func scanCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scan",
		Short: "rescan now the file versions committed unscanned (scanner down under DEPOT_SCAN_FAIL_OPEN, or too large)",
		Args:  cobra.NoArgs,
	}
	bind(cmd, maintenanceVars...)
	asJSON := cmd.Flags().Bool("json", false, "print the result as JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s := settings{e: e, cmd: cmd}
		m, _, done, err := openMaintainer(cmd.Context(), s)
		if err != nil {
			return err
		}
		defer done()
		res, err := m.Scan(cmd.Context(), maintenance.TriggerCLI)
		if err != nil {
			return err
		}
		if *asJSON {
			if err := printJSON(e.stdout, res); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(e.stdout, "scanned: %d (clean %d, infected %d), still unscanned (too large): %d, bytes: %d\n",
				res.Scanned, res.Clean, res.Infected, res.TooLarge, res.Bytes)
		}
		if res.Infected > 0 {
			return &exitError{code: ExitIntegrity, err: fmt.Errorf("scan: %d versions are infected and no longer served (see depot audit show --action file.scanned)", res.Infected)}
		}
		return nil
	}
	return cmd
}

// checkClamd logs whether clamd answers at start-up. It does not refuse to
// start: clamd may come up later, and until then uploads fail closed (or
// open, as configured).
func checkClamd(ctx context.Context, g *scan.Gate, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ver, err := g.Client().Version(ctx)
	if err != nil {
		log.Warn("malware scanner not answering; uploads are refused until it does (or committed unscanned under DEPOT_SCAN_FAIL_OPEN=on)", "err", err.Error())
		return
	}
	log.Info("malware scanner", "version", ver)
}

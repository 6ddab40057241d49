package cli

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"depot/client"
	"depot/internal/config"
)

// newClient builds a public API client from DEPOT_URL and DEPOT_TOKEN; with
// no token it uses the stored depot login of that URL (login.go).
func newClient(s settings) (*client.Client, error) {
	base, token := s.get(config.URL), s.get(config.Token)
	var tokens *client.LoginTokens
	if token == "" {
		var err error
		if base, tokens, err = storedLogin(base); err != nil {
			return nil, err
		}
	}
	if base == "" {
		return nil, usageErr("set DEPOT_URL (or --url) to the address of depot's web tier")
	}
	if token == "" && tokens == nil {
		return nil, usageErr("set DEPOT_TOKEN (or --token) to your personal access token, or sign in with depot login")
	}
	c := client.New(base, token)
	if tokens != nil {
		tokens.OnRenewError = func(err error) {
			fmt.Fprintf(s.e.stderr, "depot: warning: renewing your login failed: %v\n", err)
		}
		c.Tokens = tokens
	}
	if dir, err := os.UserCacheDir(); err == nil {
		c.StateDir = filepath.Join(dir, "depot")
	}
	return c, nil
}

// splitRemote splits "cohort/path" into its cohort and path.
func splitRemote(arg string) (cohort, p string, err error) {
	cohort, p, _ = strings.Cut(strings.TrimPrefix(arg, "/"), "/")
	if cohort == "" {
		return "", "", usageErr("%q: expected COHORT/PATH", arg)
	}
	return cohort, p, nil
}

func clientCmd(use, short string, args cobra.PositionalArgs) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: args}
	bind(cmd, config.URL, config.Token)
	return cmd
}

func uploadCmd(e *env) *cobra.Command {
	cmd := clientCmd("upload FILE...", "upload files, resumably: a rerun after an interruption continues where it stopped", cobra.MinimumNArgs(1))
	cohort := cmd.Flags().String("cohort", "", "cohort to upload into (required)")
	to := cmd.Flags().String("to", "", "folder inside the cohort")
	temporary := cmd.Flags().Bool("temporary", false, "mark the files temporary (removed by cleanup when due)")
	quiet := cmd.Flags().BoolP("quiet", "q", false, "no progress bar")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *cohort == "" {
			return usageErr("--cohort is required")
		}
		c, err := newClient(settings{e: e, cmd: cmd})
		if err != nil {
			return err
		}
		for _, local := range args {
			target := path.Join(strings.Trim(*to, "/"), filepath.Base(local))
			bar := newProgress(e.stderr, filepath.Base(local), *quiet)
			res, err := c.Upload(cmd.Context(), local, client.UploadOptions{
				Cohort: *cohort, Path: target, Temporary: *temporary, Progress: bar.update,
			})
			bar.finish()
			if err != nil {
				return fmt.Errorf("%s: %w", local, err)
			}
			note := ""
			if res.Resumed {
				note = fmt.Sprintf(" (resumed, %d bytes not re-sent)", res.Skipped)
			}
			fmt.Fprintf(e.stdout, "%s  %s/%s  %d bytes  sha256 %s%s\n", local, *cohort, res.File.Path, res.File.Size, res.File.SHA256, note)
		}
		return nil
	}
	return cmd
}

func downloadCmd(e *env) *cobra.Command {
	cmd := clientCmd("download COHORT/PATH [LOCAL]", "download a file, verified against its SHA-256; resumes an interrupted download", cobra.RangeArgs(1, 2))
	quiet := cmd.Flags().BoolP("quiet", "q", false, "no progress bar")
	version := cmd.Flags().String("version", "", "download this version (see depot versions) instead of the current one")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cohort, p, err := splitRemote(args[0])
		if err != nil {
			return err
		}
		dst := path.Base(p)
		if len(args) == 2 {
			dst = args[1]
		}
		c, err := newClient(settings{e: e, cmd: cmd})
		if err != nil {
			return err
		}
		bar := newProgress(e.stderr, path.Base(p), *quiet)
		f, err := c.Download(cmd.Context(), cohort, p, *version, dst, bar.update)
		bar.finish()
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s  %d bytes  sha256 %s\n", dst, f.Size, f.SHA256)
		return nil
	}
	return cmd
}

func lsCmd(e *env) *cobra.Command {
	cmd := clientCmd("ls COHORT[/DIR]", "list files", cobra.ExactArgs(1))
	long := cmd.Flags().BoolP("long", "l", false, "show size, time, class and SHA-256")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cohort, dir, err := splitRemote(args[0])
		if err != nil {
			return err
		}
		c, err := newClient(settings{e: e, cmd: cmd})
		if err != nil {
			return err
		}
		files, err := c.List(cmd.Context(), cohort, dir)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, f := range files {
			if *long {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", f.Size, f.Modified.Local().Format(time.DateTime), f.Class, f.SHA256, f.Path)
			} else {
				fmt.Fprintln(tw, f.Path)
			}
		}
		return tw.Flush()
	}
	return cmd
}

func rmCmd(e *env) *cobra.Command {
	cmd := clientCmd("rm COHORT/PATH...", "delete files (needs the manager role)", cobra.MinimumNArgs(1))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := newClient(settings{e: e, cmd: cmd})
		if err != nil {
			return err
		}
		for _, a := range args {
			cohort, p, err := splitRemote(a)
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), cohort, p); err != nil {
				return fmt.Errorf("%s: %w", a, err)
			}
			fmt.Fprintf(e.stdout, "deleted %s\n", a)
		}
		return nil
	}
	return cmd
}

// progress draws a one-line progress bar with speed and time left on a
// terminal; elsewhere it prints nothing.
type progress struct {
	w       io.Writer
	name    string
	off     bool
	start   time.Time
	started bool
	drawn   bool
}

func newProgress(w io.Writer, name string, quiet bool) *progress {
	f, ok := w.(*os.File)
	tty := ok && isTerminal(f)
	return &progress{w: w, name: name, off: quiet || !tty, start: time.Now()}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) update(done, total int64) {
	if p.off {
		return
	}
	el := time.Since(p.start).Seconds()
	speed := float64(done) / max(el, 0.001)
	pct, left := 100.0, "0s"
	if total > 0 {
		pct = float64(done) * 100 / float64(total)
		if speed > 0 {
			left = (time.Duration(float64(total-done)/speed) * time.Second).Round(time.Second).String()
		}
	}
	width := 30
	fill := int(pct / 100 * float64(width))
	fmt.Fprintf(p.w, "\r%-24.24s [%s%s] %5.1f%% %8.1f MiB/s  %s left ", p.name,
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct, speed/(1<<20), left)
	p.drawn = true
}

func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

package cli

import (
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func versionsCmd(e *env) *cobra.Command {
	cmd := clientCmd("versions COHORT/PATH", "list a file's versions, newest first (a deleted file's for managers)", cobra.ExactArgs(1))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cohort, p, err := splitRemote(args[0])
		if err != nil {
			return err
		}
		c, err := newClient(settings{e: e, cmd: cmd})
		if err != nil {
			return err
		}
		h, err := c.Versions(cmd.Context(), cohort, p)
		if err != nil {
			return err
		}
		if h.Deleted != nil {
			fmt.Fprintf(e.stdout, "deleted %s (a manager can undelete it)\n", h.Deleted.Local().Format(time.RFC3339))
		}
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "VERSION\tSIZE\tMODIFIED\tCLASS\tUPLOADED BY\tSHA-256\t")
		for _, v := range h.Versions {
			mark := ""
			if v.Current {
				mark = "current"
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", v.Version, v.Size, v.Modified.Local().Format(time.RFC3339), v.Class, v.UploadedBy, v.SHA256, mark)
		}
		return w.Flush()
	}
	return cmd
}

func restoreVersionCmd(e *env) *cobra.Command {
	cmd := clientCmd("restore-version COHORT/PATH VERSION", "make an old version of a file the current one again (needs the manager role)", cobra.ExactArgs(2))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cohort, p, err := splitRemote(args[0])
		if err != nil {
			return err
		}
		c, err := newClient(settings{e: e, cmd: cmd})
		if err != nil {
			return err
		}
		f, err := c.RestoreVersion(cmd.Context(), cohort, p, args[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s/%s is version %s again (%d bytes, sha256 %s)\n", cohort, p, args[1], f.Size, f.SHA256)
		return nil
	}
	return cmd
}

func undeleteCmd(e *env) *cobra.Command {
	cmd := clientCmd("undelete COHORT/PATH...", "bring deleted files back, within the deleted retention (needs the manager role)", cobra.MinimumNArgs(1))
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
			if _, err := c.Undelete(cmd.Context(), cohort, p); err != nil {
				return fmt.Errorf("%s: %w", a, err)
			}
			fmt.Fprintf(e.stdout, "undeleted %s\n", a)
		}
		return nil
	}
	return cmd
}

func purgeCmd(e *env) *cobra.Command {
	cmd := clientCmd("purge COHORT/PATH [VERSION]", "remove one version, or every version, of a file for good (needs the manager role; refused under a hold)", cobra.RangeArgs(1, 2))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cohort, p, err := splitRemote(args[0])
		if err != nil {
			return err
		}
		version := ""
		if len(args) == 2 {
			version = args[1]
		}
		c, err := newClient(settings{e: e, cmd: cmd})
		if err != nil {
			return err
		}
		if err := c.Purge(cmd.Context(), cohort, p, version); err != nil {
			return err
		}
		if version == "" {
			version = "every version"
		}
		fmt.Fprintf(e.stdout, "purged %s of %s/%s\n", version, cohort, p)
		return nil
	}
	return cmd
}

func holdCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "hold", Short: "retention holds: while one is in force no version under it is purged"}
	ls := clientCmd("ls COHORT", "list the holds in force in a cohort", cobra.ExactArgs(1))
	ls.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := newClient(settings{e: e, cmd: cmd})
		if err != nil {
			return err
		}
		holds, err := c.Holds(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tPATH\tSINCE\tBY\tREASON")
		for _, h := range holds {
			p := h.Path
			if p == "" {
				p = "(whole cohort)"
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", h.ID, p, h.Created.Local().Format(time.RFC3339), h.CreatedBy, h.Reason)
		}
		return w.Flush()
	}
	add := clientCmd("add COHORT[/PATH]", "place a hold on a cohort, a file or a folder (PATH ending in /) (needs the manager role)", cobra.ExactArgs(1))
	reason := add.Flags().String("reason", "", "why (e.g. the legal matter or study), kept in the audit trail")
	add.RunE = func(cmd *cobra.Command, args []string) error {
		cohort, p, err := splitRemote(args[0])
		if err != nil {
			return err
		}
		c, err := newClient(settings{e: e, cmd: cmd})
		if err != nil {
			return err
		}
		h, err := c.PlaceHold(cmd.Context(), cohort, p, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "hold %d placed on %s\n", h.ID, args[0])
		return nil
	}
	release := clientCmd("release COHORT ID", "release a hold (needs the manager role)", cobra.ExactArgs(2))
	release.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return usageErr("%q is not a hold ID", args[1])
		}
		c, err := newClient(settings{e: e, cmd: cmd})
		if err != nil {
			return err
		}
		if err := c.ReleaseHold(cmd.Context(), args[0], id); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "hold %d released\n", id)
		return nil
	}
	cmd.AddCommand(ls, add, release)
	return cmd
}

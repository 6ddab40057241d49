package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"depot"
	"depot/internal/config"
	"depot/servicedb"
)

// withDB opens the database of DEPOT_DATABASE_URL (migrated) for one command.
func withDB(e *env, cmd *cobra.Command, fn func(ctx context.Context, db *servicedb.DB) error) error {
	s := settings{e: e, cmd: cmd}
	db, err := openDatabase(cmd.Context(), s.get(config.DatabaseURL))
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(cmd.Context(), db)
}

// dbCommand returns a command bound to DEPOT_DATABASE_URL.
func dbCommand(use, short string, args cobra.PositionalArgs) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: args}
	bind(cmd, config.DatabaseURL)
	return cmd
}

// auditAdmin records an account change made from the command line.
func auditAdmin(ctx context.Context, db *servicedb.DB, action depot.Action, meta map[string]string) error {
	_, err := db.Append(ctx, depot.AuditEvent{
		Action: action, Outcome: depot.OutcomeSuccess, Actor: "operator", AuthMethod: "cli",
		ServerRole: "cli", DeclaredSize: -1, StoredSize: -1, Metadata: meta,
	})
	return err
}

func migrateCmd(e *env) *cobra.Command {
	cmd := dbCommand("migrate", "apply database migrations", cobra.NoArgs)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			fmt.Fprintf(e.stdout, "database migrated (%s)\n", db.Engine())
			return nil
		})
	}
	return cmd
}

func usersCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "manage user accounts"}
	add := dbCommand("add NAME", "add a user", cobra.ExactArgs(1))
	admin := add.Flags().Bool("admin", false, "give the user global admin rights")
	add.RunE = func(cmd *cobra.Command, args []string) error {
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			if err := db.CreateUser(ctx, args[0], *admin); err != nil {
				return err
			}
			return auditAdmin(ctx, db, depot.ActionUserCreated, map[string]string{"user": args[0], "admin": fmt.Sprint(*admin)})
		})
	}
	list := dbCommand("list", "list users", cobra.NoArgs)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			users, err := db.ListUsers(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tADMIN\tCREATED\tSTATUS")
			for _, u := range users {
				status := "active"
				if u.Disabled != nil {
					status = "disabled " + u.Disabled.Format(time.DateOnly)
				}
				fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", u.Name, u.Admin, u.Created.Format(time.DateOnly), status)
			}
			return tw.Flush()
		})
	}
	disable := dbCommand("disable NAME", "disable a user (their tokens stop working)", cobra.ExactArgs(1))
	disable.RunE = func(cmd *cobra.Command, args []string) error {
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			if err := db.DisableUser(ctx, args[0]); err != nil {
				return err
			}
			return auditAdmin(ctx, db, depot.ActionUserDisabled, map[string]string{"user": args[0]})
		})
	}
	cmd.AddCommand(add, list, disable)
	cmd.AddCommand(sshKeyCmds(e)...) // add-key, remove-key, keys (accounts_sshkeys.go)
	return cmd
}

func cohortsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "cohorts", Short: "manage cohorts and grants"}
	add := dbCommand("add NAME", "add a cohort", cobra.ExactArgs(1))
	add.RunE = func(cmd *cobra.Command, args []string) error {
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			if err := db.CreateCohort(ctx, args[0]); err != nil {
				return err
			}
			return auditAdmin(ctx, db, depot.ActionCohortCreated, map[string]string{"cohort": args[0]})
		})
	}
	grant := dbCommand("grant USER COHORT ROLE", "grant a role (uploader, reader, manager) in a cohort", cobra.ExactArgs(3))
	grant.RunE = func(cmd *cobra.Command, args []string) error {
		role := depot.Role(args[2])
		if !role.Valid() {
			return usageErr("role must be uploader, reader or manager")
		}
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			if err := db.Grant(ctx, args[0], args[1], role); err != nil {
				return err
			}
			return auditAdmin(ctx, db, depot.ActionGrantChanged, map[string]string{"user": args[0], "cohort": args[1], "role": args[2]})
		})
	}
	revoke := dbCommand("revoke USER COHORT", "remove a user's role in a cohort", cobra.ExactArgs(2))
	revoke.RunE = func(cmd *cobra.Command, args []string) error {
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			if err := db.Revoke(ctx, args[0], args[1]); err != nil {
				return err
			}
			return auditAdmin(ctx, db, depot.ActionGrantChanged, map[string]string{"user": args[0], "cohort": args[1], "role": ""})
		})
	}
	list := dbCommand("list", "list cohorts and their grants", cobra.NoArgs)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			cohorts, err := db.ListCohorts(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "COHORT\tUSER\tROLE")
			for _, c := range cohorts {
				grants, err := db.CohortGrants(ctx, c.Name)
				if err != nil {
					return err
				}
				if len(grants) == 0 {
					fmt.Fprintf(tw, "%s\t-\t-\n", c.Name)
				}
				for user, role := range grants {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, user, role)
				}
			}
			return tw.Flush()
		})
	}
	cmd.AddCommand(add, grant, revoke, list)
	return cmd
}

func tokensCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "manage personal access tokens"}
	create := dbCommand("create USER", "create a token; prints only the token (shown once)", cobra.ExactArgs(1))
	ttl := create.Flags().Duration("ttl", 90*24*time.Hour, "lifetime of the token")
	label := create.Flags().String("label", "", "a note to recognise the token by")
	create.RunE = func(cmd *cobra.Command, args []string) error {
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			tok, info, err := db.CreateToken(ctx, args[0], *label, *ttl)
			if err != nil {
				return err
			}
			if err := auditAdmin(ctx, db, depot.ActionTokenCreated, map[string]string{"user": args[0], "token_id": info.ID}); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, tok)
			return nil
		})
	}
	list := dbCommand("list [USER]", "list tokens (never their secret)", cobra.MaximumNArgs(1))
	list.RunE = func(cmd *cobra.Command, args []string) error {
		user := ""
		if len(args) == 1 {
			user = args[0]
		}
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			toks, err := db.ListTokens(ctx, user)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tUSER\tLABEL\tCREATED\tEXPIRES\tSTATUS")
			for _, t := range toks {
				status := "active"
				if t.Revoked != nil {
					status = "revoked"
				} else if time.Now().After(t.Expires) {
					status = "expired"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.User, t.Label, t.Created.Format(time.DateOnly), t.Expires.Format(time.DateOnly), status)
			}
			return tw.Flush()
		})
	}
	revoke := dbCommand("revoke ID", "revoke a token", cobra.ExactArgs(1))
	revoke.RunE = func(cmd *cobra.Command, args []string) error {
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			if err := db.RevokeToken(ctx, args[0]); err != nil {
				return err
			}
			return auditAdmin(ctx, db, depot.ActionTokenRevoked, map[string]string{"token_id": args[0]})
		})
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

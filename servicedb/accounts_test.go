package servicedb_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
)

func TestUsersAndCohorts(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		now := time.Date(2025, 2, 3, 4, 5, 6, 789_000_000, time.UTC)
		db.Now = func() time.Time { return now }
		for _, u := range []string{"bob", "alice", "Carol.x@example.org"} {
			if err := db.CreateUser(ctx, u, u == "alice"); err != nil {
				t.Fatalf("CreateUser(%s): %v", u, err)
			}
		}
		wantCode(t, db.CreateUser(ctx, "bob", false), depot.CodeConflict)
		for _, bad := range []string{"", "-x", "a b", "a/b", "ä", string(make([]byte, 65))} {
			wantCode(t, db.CreateUser(ctx, bad, false), depot.CodeInvalid)
		}
		users, err := db.ListUsers(ctx)
		if err != nil {
			t.Fatalf("ListUsers: %v", err)
		}
		var names []string
		for _, u := range users {
			names = append(names, u.Name)
		}
		if got := names; len(got) != 3 || got[0] != "Carol.x@example.org" || got[1] != "alice" || got[2] != "bob" {
			t.Fatalf("ListUsers order = %v (want bytewise)", got)
		}
		u, err := db.GetUser(ctx, "alice")
		if err != nil || !u.Admin || !u.Created.Equal(now) || u.Disabled != nil {
			t.Fatalf("GetUser = %+v, %v", u, err)
		}
		_, err = db.GetUser(ctx, "nobody")
		wantCode(t, err, depot.CodeNotFound)

		if err := db.DisableUser(ctx, "bob"); err != nil {
			t.Fatalf("DisableUser: %v", err)
		}
		later := now.Add(time.Hour)
		db.Now = func() time.Time { return later }
		if err := db.DisableUser(ctx, "bob"); err != nil {
			t.Fatalf("DisableUser again: %v", err)
		}
		if u, _ := db.GetUser(ctx, "bob"); u.Disabled == nil || !u.Disabled.Equal(now) {
			t.Fatalf("disabled = %v, want first time %v", u.Disabled, now)
		}
		wantCode(t, db.DisableUser(ctx, "nobody"), depot.CodeNotFound)

		for _, c := range []string{"trial-b", "trial-a"} {
			if err := db.CreateCohort(ctx, c); err != nil {
				t.Fatalf("CreateCohort: %v", err)
			}
		}
		wantCode(t, db.CreateCohort(ctx, "trial-a"), depot.CodeConflict)
		wantCode(t, db.CreateCohort(ctx, "../x"), depot.CodeInvalid)
		cs, err := db.ListCohorts(ctx)
		if err != nil || len(cs) != 2 || cs[0].Name != "trial-a" || !cs[0].Created.Equal(later) {
			t.Fatalf("ListCohorts = %+v, %v", cs, err)
		}
	})
}

func TestGrants(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(db.CreateUser(ctx, "alice", false))
		must(db.CreateUser(ctx, "bob", false))
		must(db.CreateCohort(ctx, "c1"))
		must(db.CreateCohort(ctx, "c2"))

		must(db.Grant(ctx, "alice", "c1", depot.RoleUploader))
		must(db.Grant(ctx, "alice", "c2", depot.RoleReader))
		must(db.Grant(ctx, "alice", "c1", depot.RoleManager)) // replaces
		must(db.Grant(ctx, "bob", "c1", depot.RoleReader))
		wantCode(t, db.Grant(ctx, "nobody", "c1", depot.RoleReader), depot.CodeNotFound)
		wantCode(t, db.Grant(ctx, "alice", "nowhere", depot.RoleReader), depot.CodeNotFound)
		wantCode(t, db.Grant(ctx, "alice", "c1", "owner"), depot.CodeInvalid)

		g, err := db.Grants(ctx, "alice")
		want := map[string]depot.Role{"c1": depot.RoleManager, "c2": depot.RoleReader}
		if err != nil || !maps.Equal(g, want) {
			t.Fatalf("Grants = %v, %v; want %v", g, err, want)
		}
		cg, err := db.CohortGrants(ctx, "c1")
		if err != nil || !maps.Equal(cg, map[string]depot.Role{"alice": depot.RoleManager, "bob": depot.RoleReader}) {
			t.Fatalf("CohortGrants = %v, %v", cg, err)
		}
		_, err = db.CohortGrants(ctx, "nowhere")
		wantCode(t, err, depot.CodeNotFound)

		must(db.Revoke(ctx, "alice", "c2"))
		wantCode(t, db.Revoke(ctx, "alice", "c2"), depot.CodeNotFound)
		g, err = db.Grants(ctx, "alice")
		if err != nil || !maps.Equal(g, map[string]depot.Role{"c1": depot.RoleManager}) {
			t.Fatalf("Grants after revoke = %v, %v", g, err)
		}
		_, err = db.Grants(ctx, "nobody")
		wantCode(t, err, depot.CodeNotFound)
		if g, err := db.Grants(ctx, "bob"); err != nil || g == nil || len(g) != 1 {
			t.Fatalf("Grants(bob) = %v, %v", g, err)
		}
	})
}

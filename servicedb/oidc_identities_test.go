package servicedb_test

import (
	"context"
	"testing"

	"depot"
	"depot/servicedb"
)

func oidcEvent(action depot.Action, user string) depot.AuditEvent {
	return depot.AuditEvent{Action: action, Outcome: depot.OutcomeSuccess, Actor: user, AuthMethod: depot.AuthMethodOIDC,
		ServerRole: "services", DeclaredSize: -1, StoredSize: -1,
		Metadata: map[string]string{"idp": "https://idp.example", "sub": "s-" + user}}
}

// Binding a subject, creating a user on the way, and recording group roles
// are each written with their audit record, or not at all.
func TestOIDCIdentities(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		const iss = "https://idp.example"
		if err := db.CreateUser(ctx, "alice", false); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateCohort(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		if err := db.Grant(ctx, "alice", "c1", depot.RoleReader); err != nil {
			t.Fatal(err)
		}
		_, _, err := db.OIDCAccount(ctx, iss, "s-alice")
		wantCode(t, err, depot.CodeNotFound)

		// Bind an existing user.
		if _, err := db.LinkOIDC(ctx, oidcEvent(depot.ActionIdentityLinked, "alice"), iss, "s-alice", "alice@example.org", "alice", false); err != nil {
			t.Fatalf("LinkOIDC(existing): %v", err)
		}
		p, roles, err := db.OIDCAccount(ctx, iss, "s-alice")
		if err != nil || p.User != "alice" || p.AuthMethod != "oidc" || p.IdP != iss || p.Subject != "s-alice" ||
			p.Grants["c1"] != depot.RoleReader || roles != "" {
			t.Fatalf("OIDCAccount = %+v %q %v", p, roles, err)
		}
		// The same subject again, or another subject for the same user, is a conflict;
		// neither leaves an audit record.
		before, _, _ := db.Head(ctx)
		_, err = db.LinkOIDC(ctx, oidcEvent(depot.ActionIdentityLinked, "alice"), iss, "s-alice", "", "alice", false)
		wantCode(t, err, depot.CodeConflict)
		_, err = db.LinkOIDC(ctx, oidcEvent(depot.ActionIdentityLinked, "alice"), iss, "s-mallory", "", "alice", false)
		wantCode(t, err, depot.CodeConflict)
		// A user that does not exist cannot be bound without creating it.
		_, err = db.LinkOIDC(ctx, oidcEvent(depot.ActionIdentityLinked, "nobody"), iss, "s-nobody", "", "nobody", false)
		wantCode(t, err, depot.CodeNotFound)
		// Creating a taken or invalid name fails.
		_, err = db.LinkOIDC(ctx, oidcEvent(depot.ActionUserCreated, "alice"), iss, "s-other", "", "alice", true)
		wantCode(t, err, depot.CodeConflict)
		_, err = db.LinkOIDC(ctx, oidcEvent(depot.ActionUserCreated, "x"), iss, "s-x", "", "bad name", true)
		wantCode(t, err, depot.CodeInvalid)
		if after, _, _ := db.Head(ctx); after != before {
			t.Fatalf("refused bindings left audit records: head %d → %d", before, after)
		}
		if _, err := db.GetUser(ctx, "nobody"); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("a refused binding created a user: %v", err)
		}

		// Create on first sign-in.
		ev, err := db.LinkOIDC(ctx, oidcEvent(depot.ActionUserCreated, "bob@example.org"), iss, "s-bob", "bob@example.org", "bob@example.org", true)
		if err != nil || ev.Seq == 0 {
			t.Fatalf("LinkOIDC(create): %+v %v", ev, err)
		}
		if u, err := db.GetUser(ctx, "bob@example.org"); err != nil || u.Admin {
			t.Fatalf("created user: %+v %v", u, err)
		}
		// The same subject at another provider is another person.
		_, _, err = db.OIDCAccount(ctx, "https://other.example", "s-bob")
		wantCode(t, err, depot.CodeNotFound)

		// Group roles are recorded with their audit record.
		if _, err := db.SetOIDCGroupRoles(ctx, oidcEvent(depot.ActionGrantChanged, "bob@example.org"), iss, "s-bob", "c1:manager"); err != nil {
			t.Fatal(err)
		}
		if _, roles, err := db.OIDCAccount(ctx, iss, "s-bob"); err != nil || roles != "c1:manager" {
			t.Fatalf("group roles = %q, %v", roles, err)
		}
		_, err = db.SetOIDCGroupRoles(ctx, oidcEvent(depot.ActionGrantChanged, "x"), iss, "s-unknown", "c1:reader")
		wantCode(t, err, depot.CodeNotFound)

		ids, err := db.OIDCIdentities(ctx, "")
		if err != nil || len(ids) != 2 || ids[0].Subject != "s-alice" || ids[1].User != "bob@example.org" || ids[1].Email != "bob@example.org" {
			t.Fatalf("OIDCIdentities = %+v %v", ids, err)
		}
		if ids, err := db.OIDCIdentities(ctx, "alice"); err != nil || len(ids) != 1 {
			t.Fatalf("OIDCIdentities(alice) = %+v %v", ids, err)
		}

		// A disabled user cannot sign in.
		if err := db.DisableUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		_, _, err = db.OIDCAccount(ctx, iss, "s-alice")
		wantCode(t, err, depot.CodeUnauthorized)

		evs, err := db.Events(ctx, servicedb.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		var got []depot.Action
		for _, e := range evs {
			got = append(got, e.Action)
		}
		want := []depot.Action{depot.ActionIdentityLinked, depot.ActionUserCreated, depot.ActionGrantChanged}
		if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Fatalf("audit actions = %v, want %v", got, want)
		}
		if r, err := db.VerifyChain(ctx); err != nil || !r.OK {
			t.Fatalf("VerifyChain: %+v %v", r, err)
		}
	})
}

package servicedb_test

import (
	"context"
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
)

func TestTokens(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		now := time.Date(2025, 4, 1, 9, 0, 0, 0, time.UTC)
		db.Now = func() time.Time { return now }
		for _, u := range []string{"alice", "bob"} {
			if err := db.CreateUser(ctx, u, false); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.CreateCohort(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		if err := db.Grant(ctx, "alice", "c1", depot.RoleUploader); err != nil {
			t.Fatal(err)
		}

		tok, info, err := db.CreateToken(ctx, "alice", "laptop", time.Hour)
		if err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		if !regexp.MustCompile(`^dpt_[a-z2-7]{52}$`).MatchString(tok) {
			t.Fatalf("token %q has the wrong shape", tok)
		}
		if info.User != "alice" || info.Label != "laptop" || !info.Created.Equal(now) ||
			!info.Expires.Equal(now.Add(time.Hour)) || info.Revoked != nil || info.LastUsed != nil {
			t.Fatalf("TokenInfo = %+v", info)
		}
		assertNotStored(t, db, tok)

		p, err := db.Authenticate(ctx, tok)
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		if p.User != "alice" || p.Admin || p.AuthMethod != "token" ||
			!maps.Equal(p.Grants, map[string]depot.Role{"c1": depot.RoleUploader}) {
			t.Fatalf("Principal = %+v", p)
		}
		list, err := db.ListTokens(ctx, "alice")
		if err != nil || len(list) != 1 || list[0].ID != info.ID || list[0].LastUsed == nil || !list[0].LastUsed.Equal(now) {
			t.Fatalf("ListTokens = %+v, %v", list, err)
		}

		// Unknown, malformed and tampered tokens.
		for _, bad := range []string{"", "dpt_", "Bearer " + tok, tok[:len(tok)-1] + "a", strings.ToUpper(tok), tok + "x"} {
			if bad == tok {
				continue
			}
			_, err := db.Authenticate(ctx, bad)
			wantCode(t, err, depot.CodeUnauthorized)
		}

		// Expiry, with the clock moved past it.
		db.Now = func() time.Time { return now.Add(time.Hour) }
		_, err = db.Authenticate(ctx, tok)
		wantCode(t, err, depot.CodeUnauthorized)
		db.Now = func() time.Time { return now.Add(time.Minute) }
		if _, err := db.Authenticate(ctx, tok); err != nil {
			t.Fatalf("Authenticate before expiry: %v", err)
		}

		// Revocation.
		if err := db.RevokeToken(ctx, info.ID); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		_, err = db.Authenticate(ctx, tok)
		wantCode(t, err, depot.CodeUnauthorized)
		wantCode(t, db.RevokeToken(ctx, "nope"), depot.CodeNotFound)
		if list, _ := db.ListTokens(ctx, "alice"); list[0].Revoked == nil {
			t.Fatal("revocation not listed")
		}

		// A disabled user's tokens stop working, and they get no new ones.
		tok2, _, err := db.CreateToken(ctx, "bob", "", 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := db.Authenticate(ctx, tok2); err != nil || p.User != "bob" || len(p.Grants) != 0 {
			t.Fatalf("Authenticate(bob) = %+v, %v", p, err)
		}
		if err := db.DisableUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		_, err = db.Authenticate(ctx, tok2)
		wantCode(t, err, depot.CodeUnauthorized)
		_, _, err = db.CreateToken(ctx, "bob", "", time.Hour)
		wantCode(t, err, depot.CodeConflict)
		_, _, err = db.CreateToken(ctx, "nobody", "", time.Hour)
		wantCode(t, err, depot.CodeNotFound)
		_, _, err = db.CreateToken(ctx, "alice", "", 0)
		wantCode(t, err, depot.CodeInvalid)

		all, err := db.ListTokens(ctx, "")
		if err != nil || len(all) != 2 {
			t.Fatalf("ListTokens(all) = %+v, %v", all, err)
		}
	})
}

// Tokens expire on the real clock too (ttl of 1 ms).
func TestTokenExpiresRealClock(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		if err := db.CreateUser(ctx, "alice", true); err != nil {
			t.Fatal(err)
		}
		tok, _, err := db.CreateToken(ctx, "alice", "", time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		_, err = db.Authenticate(ctx, tok)
		wantCode(t, err, depot.CodeUnauthorized)
	})
}

// assertNotStored checks that no tokens column holds the plaintext.
func assertNotStored(t *testing.T, db *servicedb.DB, tok string) {
	t.Helper()
	rows, err := db.SQL().QueryContext(context.Background(), "SELECT id, user_name, label, hash FROM tokens")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, user, label, hash string
		if err := rows.Scan(&id, &user, &label, &hash); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{id, user, label, hash} {
			if strings.Contains(v, tok[len("dpt_"):]) {
				t.Fatal("token plaintext stored in the database")
			}
		}
		if len(hash) != 64 {
			t.Fatalf("stored hash %q", hash)
		}
	}
}

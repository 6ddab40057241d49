package web

import (
	"context"
	"testing"
	"time"

	"depot"
)

// TestUploadersRememberBriefly checks that an answer of services is reused
// for one credential and cohort within uploaderTTL, and asked again after it,
// for another credential or cohort, and after a refusal.
func TestUploadersRememberBriefly(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	u := newUploaders(func() time.Time { return now })
	asked := 0
	refuse := false
	ask := func(ctx context.Context, c depot.Caller, cohort string, perm depot.Permission) (depot.Principal, error) {
		asked++
		if perm != depot.PermUpload {
			t.Errorf("asked for %q, want upload", perm)
		}
		if refuse {
			return depot.Principal{}, depot.Errorf(depot.CodeForbidden, "no")
		}
		return depot.Principal{User: c.Token + "-user"}, nil
	}
	as := func(token, trusted string) depot.Caller { return depot.Caller{Token: token, TrustedUser: trusted} }
	check := func(c depot.Caller, cohort, wantUser string, wantAsked int) {
		t.Helper()
		p, err := u.authorize(context.Background(), c, cohort, ask)
		if err != nil || p.User != wantUser || asked != wantAsked {
			t.Fatalf("authorize = %q, %v after %d questions; want %q after %d", p.User, err, asked, wantUser, wantAsked)
		}
	}
	check(as("a", ""), "c1", "a-user", 1)
	check(as("a", ""), "c1", "a-user", 1) // remembered
	check(as("b", ""), "c1", "b-user", 2) // another token
	check(as("a", ""), "c2", "a-user", 3) // another cohort
	check(as("", "a"), "c1", "-user", 4)  // a trusted user named like a token is another credential
	now = now.Add(uploaderTTL)
	check(as("a", ""), "c1", "a-user", 5) // expired

	refuse = true
	now = now.Add(uploaderTTL)
	for range 2 {
		if _, err := u.authorize(context.Background(), as("a", ""), "c1", ask); depot.ErrorCode(err) != depot.CodeForbidden {
			t.Fatalf("authorize after revocation = %v, want forbidden", err)
		}
	}
	if asked != 7 {
		t.Errorf("asked %d times, want 7: refusals are not remembered", asked)
	}
	if _, err := u.authorize(context.Background(), depot.Caller{}, "c1", ask); err == nil || asked != 8 {
		t.Errorf("a caller without credential: %v after %d questions, want a refusal from services", err, asked)
	}
}

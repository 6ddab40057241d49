package servicedb_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/ssh"

	"depot"
	"depot/servicedb"
)

func newSSHKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(k))
}

func TestSSHKeys(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
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
		k1, k2 := newSSHKey(t), newSSHKey(t)
		info, err := db.AddSSHKey(ctx, "alice", k1[:len(k1)-1]+" alice@laptop\n")
		if err != nil {
			t.Fatalf("AddSSHKey: %v", err)
		}
		if info.Type != "ssh-ed25519" || info.Comment != "alice@laptop" || len(info.Fingerprint) != len("SHA256:")+43 {
			t.Fatalf("info = %+v", info)
		}
		if _, err := db.AddSSHKey(ctx, "alice", k2); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AddSSHKey(ctx, "bob", k1); depot.ErrorCode(err) != depot.CodeConflict {
			t.Fatalf("a key registered twice: %v, want conflict", err)
		}
		if _, err := db.AddSSHKey(ctx, "nobody", newSSHKey(t)); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("unknown user: %v", err)
		}
		for _, bad := range []string{"", "not a key", `command="x" ` + k1, k1 + k2} {
			if _, err := db.AddSSHKey(ctx, "bob", bad); depot.ErrorCode(err) != depot.CodeInvalid {
				t.Fatalf("AddSSHKey(%q) = %v, want invalid", bad, err)
			}
		}
		p, err := db.AuthenticateSSHKey(ctx, k1)
		if err != nil || p.User != "alice" || p.AuthMethod != servicedb.AuthMethodSSHKey || p.Grants["c1"] != depot.RoleUploader {
			t.Fatalf("AuthenticateSSHKey = %+v, %v", p, err)
		}
		for _, bad := range []string{newSSHKey(t), "garbage"} {
			if _, err := db.AuthenticateSSHKey(ctx, bad); depot.ErrorCode(err) != depot.CodeUnauthorized {
				t.Fatalf("unregistered key: %v", err)
			}
		}
		if err := db.RevokeSSHKey(ctx, "bob", info.Fingerprint); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("revoking another user's key: %v", err)
		}
		if err := db.RevokeSSHKey(ctx, "alice", info.Fingerprint); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AuthenticateSSHKey(ctx, k1); depot.ErrorCode(err) != depot.CodeUnauthorized {
			t.Fatalf("revoked key: %v", err)
		}
		if _, err := db.AuthenticateSSHKey(ctx, k2); err != nil {
			t.Fatalf("the other key: %v", err)
		}
		keys, err := db.ListSSHKeys(ctx, "alice")
		if err != nil || len(keys) != 2 || keys[0].Revoked == nil && keys[1].Revoked == nil {
			t.Fatalf("ListSSHKeys = %+v, %v", keys, err)
		}
		if err := db.DisableUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AuthenticateSSHKey(ctx, k2); depot.ErrorCode(err) != depot.CodeUnauthorized {
			t.Fatalf("disabled user's key: %v", err)
		}
	})
}

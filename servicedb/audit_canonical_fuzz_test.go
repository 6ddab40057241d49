package servicedb

import (
	"bytes"
	"testing"
	"time"

	"depot"
)

// FuzzCanonical checks the audit chain encoding: it never panics, it is
// deterministic, and two events that differ in any encoded field encode
// differently (no field can be shifted into its neighbour).
func FuzzCanonical(f *testing.F) {
	f.Add(int64(1), "upload.completed", "alice", "c1/a.csv", "a.csv", int64(10), "meta", "v")
	f.Add(int64(0), "", "", "", "", int64(-1), "", "")
	f.Add(int64(7), "x\x00y", "a|b", "k\nv", "\xff", int64(1<<40), "a=b", "c")
	f.Fuzz(func(t *testing.T, seq int64, action, actor, key, name string, size int64, mk, mv string) {
		ts := time.UnixMilli(1_800_000_000_000).UTC()
		ev := depot.AuditEvent{Seq: seq, Time: ts, Action: depot.Action(action), Actor: actor, Key: key,
			FileName: name, DeclaredSize: size, Metadata: map[string]string{mk: mv}}
		a, b := Canonical(ev), Canonical(ev)
		if !bytes.Equal(a, b) {
			t.Fatal("encoding is not deterministic")
		}
		shifted := ev
		shifted.Actor, shifted.Key = actor+key, ""
		if actor+key != actor && key != "" && bytes.Equal(Canonical(shifted), a) {
			t.Fatal("moving bytes between fields gives the same encoding")
		}
		changed := ev
		changed.Seq++
		if bytes.Equal(Canonical(changed), a) {
			t.Fatal("seq is not encoded")
		}
	})
}

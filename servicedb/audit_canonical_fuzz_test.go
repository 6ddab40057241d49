package servicedb

import (
	"encoding/binary"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"depot"
)

// decodeFields splits a canonical encoding into its fields, failing on a
// length that runs past the end.
func decodeFields(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("%d trailing bytes", len(b))
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(len(b)-4) < uint64(n) {
			t.Fatalf("field of %d bytes in %d", n, len(b)-4)
		}
		out = append(out, string(b[4:4+n]))
		b = b[4+n:]
	}
	return out
}

// FuzzCanonical checks the audit chain encoding against its documented
// form: decoded field by field it gives back exactly the event (so two
// events that differ in any encoded field encode differently: nothing can
// shift between fields), and the metadata entries come out in ascending
// key order whatever order the map yields them in. Each property fails for
// an encoding that drops a field, swaps two, forgets a length or emits
// metadata in iteration order.
func FuzzCanonical(f *testing.F) {
	f.Add(int64(1), "upload.completed", "alice", "c1/a.csv", "a.csv", int64(10), "rows", "12", "format", "csv", "b")
	f.Add(int64(0), "", "", "", "", int64(-1), "", "", "", "", "")
	f.Add(int64(7), "x\x00y", "a|b", "k\nv", "\xff", int64(1<<40), "a=b", "c", "z", "", "m")
	f.Add(int64(-3), "\x00\x00\x00\x01", "actor", "", "name", int64(0), "b", "1", "a", "2", "c")
	f.Fuzz(func(t *testing.T, seq int64, action, actor, key, name string, size int64, k1, v1, k2, v2, k3 string) {
		ts := time.UnixMilli(1_800_000_000_000).UTC()
		meta := map[string]string{k1: v1, k2: v2, k3: "third"}
		ev := depot.AuditEvent{Seq: seq, Time: ts, Action: depot.Action(action), Actor: actor, Key: key,
			FileName: name, DeclaredSize: size, StoredSize: -1, Metadata: meta, PrevHash: GenesisHash}
		fields := decodeFields(t, Canonical(ev))
		i64 := func(n int64) string { return strconv.FormatInt(n, 10) }
		want := []string{CanonicalVersion, i64(seq), i64(ts.UnixMilli()), action, "", "", actor, "", "", key,
			name, "", i64(size), "0", "-1", "", "", "", "", "", "", "", "", "0", "", "", i64(int64(len(meta)))}
		if len(fields) != len(want)+2*len(meta)+1 {
			t.Fatalf("%d fields, want %d", len(fields), len(want)+2*len(meta)+1)
		}
		for i, w := range want {
			if fields[i] != w {
				t.Fatalf("field %d = %q, want %q", i+1, fields[i], w)
			}
		}
		entries := fields[len(want) : len(fields)-1]
		keys := slices.Sorted(maps.Keys(meta))
		for i, k := range keys {
			if entries[2*i] != k || entries[2*i+1] != meta[k] {
				t.Fatalf("metadata entry %d = %q=%q, want %q=%q (ascending keys)", i, entries[2*i], entries[2*i+1], k, meta[k])
			}
		}
		if fields[len(fields)-1] != GenesisHash {
			t.Fatalf("last field %q, want the prev hash", fields[len(fields)-1])
		}
	})
}

// FuzzMetadataJSON checks the stored metadata encoding: ParseMetadata
// accepts a text only when it is exactly MetadataJSON of what it parses to;
// every map survives MetadataJSON → ParseMetadata; and a key duplicated in
// a canonical text is always refused.
func FuzzMetadataJSON(f *testing.F) {
	f.Add(`{"permission":"delete","permission":"upload"}`, "permission", "upload", "b", "<&>")
	f.Add(`{"a":"1"}`, "", "", "\u2028", "\xff")
	f.Add(`{"b":"1","a":"2"}`, "a", "1", "a", "2")
	f.Fuzz(func(t *testing.T, text, k1, v1, k2, v2 string) {
		if m, err := ParseMetadata(text); err == nil {
			if back, _ := MetadataJSON(m); back != text {
				t.Fatalf("ParseMetadata accepted %q, whose canonical form is %q", text, back)
			}
		}
		m := map[string]string{clean(k1): clean(v1), clean(k2): clean(v2)}
		canon, err := MetadataJSON(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseMetadata(canon)
		if err != nil || !maps.Equal(got, m) {
			t.Fatalf("ParseMetadata(MetadataJSON(%q)) = %q, %v", m, got, err)
		}
		// Repeat k1's entry in front of the canonical text.
		single, _ := MetadataJSON(map[string]string{clean(k1): clean(v1)})
		dup := "{" + single[1:len(single)-1] + "," + canon[1:]
		if _, err := ParseMetadata(dup); err == nil {
			t.Fatalf("ParseMetadata accepted %q, which repeats a key", dup)
		}
	})
}

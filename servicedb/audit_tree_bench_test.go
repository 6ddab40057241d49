package servicedb

import (
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"depot"
)

// BenchmarkTreeNext measures the Merkle bookkeeping an append adds in
// memory: the leaf hash, the subtrees the record completes and the
// frontier update (the tree row's INSERT is in BenchmarkAppend).
//
//	go test -run x -bench TreeNext ./servicedb/
func BenchmarkTreeNext(b *testing.B) {
	a := &treeAppender{f: &frontier{nodes: map[int64]tlog.Hash{}}}
	hash := Hash(depot.AuditEvent{Seq: 1, Action: depot.ActionList, PrevHash: GenesisHash})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.next(hash); err != nil {
			b.Fatal(err)
		}
	}
}

package storagetest

import (
	"bytes"
	"errors"
	"testing"

	"depot"
	"depot/storage"
)

// testConcat: the Store's concatenation steps over the driver. Seal of an
// incomplete session is CodeConflict; Seal publishes a complete one as its
// object (twice is the same) and keeps the session; AppendObject copies
// sealed parts in order into another session, which completes as their
// concatenation; a part that differs from its seal (size or SHA-256) is
// refused and leaves the session as it was; removing a sealed session
// removes its object.
func (s *suite) testConcat(t *testing.T) {
	st, ss := s.store(t, storage.Options{})
	ctx := t.Context()
	data := RandData(1<<20+333, 9)
	halves := [][]byte{data[:400_000], data[400_000:]}
	var sealed []storage.Stored
	for i, h := range halves {
		u := newUpload(t, st, int64(len(h)))
		appendOK(t, st, u.ID, 0, h[:1000])
		if _, err := st.Seal(ctx, u.ID); depot.ErrorCode(err) != depot.CodeConflict {
			t.Fatalf("Seal of an incomplete session: %v, want conflict", err)
		}
		appendOK(t, st, u.ID, 1000, h[1000:])
		p, err := st.Seal(ctx, u.ID)
		if err != nil {
			t.Fatalf("Seal part %d: %v", i, err)
		}
		if again, err := st.Seal(ctx, u.ID); err != nil || again != p {
			t.Fatalf("Seal again: %+v %v, want %+v", again, err, p)
		}
		if p.Size != int64(len(h)) || p.SHA256 != sum(h) {
			t.Fatalf("Seal part %d: %+v", i, p)
		}
		if _, err := st.Upload(ctx, u.ID); err != nil {
			t.Fatalf("the sealed session is gone: %v", err)
		}
		sealed = append(sealed, p)
	}
	final := newUpload(t, st, int64(len(data)))
	// A part whose seal does not match its bytes is refused.
	bad := sealed[0]
	bad.SHA256 = sum([]byte("other"))
	if _, err := st.AppendObject(ctx, final.ID, 0, bad); !errors.Is(err, storage.ErrDamaged) {
		t.Fatalf("AppendObject of a changed part: %v, want ErrDamaged", err)
	}
	if _, err := st.AppendObject(ctx, final.ID, 5, sealed[0]); depot.ErrorCode(err) != depot.CodeOffsetMismatch {
		t.Fatalf("AppendObject at a wrong offset: %v, want offset_mismatch", err)
	}
	var off int64
	for _, p := range sealed {
		u, err := st.AppendObject(ctx, final.ID, off, p)
		if err != nil {
			t.Fatalf("AppendObject: %v", err)
		}
		off = u.Offset
	}
	obj, err := st.Complete(ctx, final.ID, storage.Want{Size: int64(len(data)), SHA256: sum(data)}, noCommit)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if got := readObject(t, st, obj.ID); !bytes.Equal(got, data) {
		t.Fatalf("the final object differs from the concatenation (%d bytes, want %d)", len(got), len(data))
	}
	for _, p := range sealed {
		if err := st.Abort(ctx, p.ID); err != nil {
			t.Fatalf("Abort sealed part: %v", err)
		}
		if _, err := st.Stat(ctx, p.ID); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("a released part's object is still there: %v", err)
		}
	}
	_ = ss
}

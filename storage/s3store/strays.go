package s3store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"depot/storage"
)

// strayName is Stray.Name, JSON-encoded.
type strayName struct {
	Kind     string `json:"kind"` // "staging" or "upload"
	ID       string `json:"id,omitempty"`
	UploadID string `json:"upload_id,omitempty"`
}

func (n strayName) String() string {
	b, _ := json.Marshal(n)
	return string(b)
}

// Strays finds two kinds of leftovers:
//
//   - "staging": a staging area, named by its marker or its tail objects
//     (with the marker's multipart upload), with its ID as SessionID;
//   - "upload": an incomplete multipart upload below the prefix that no
//     marker references (ListMultipartUploads), for example one whose
//     marker was never written because the process died.
func (d *Driver) Strays(ctx context.Context) ([]storage.Stray, error) {
	type staging struct {
		marker   *marker
		modTime  time.Time
		tailSize int64
		tailGen  int
	}
	stagings := map[string]*staging{}
	get := func(id string) *staging {
		if stagings[id] == nil {
			stagings[id] = &staging{}
		}
		return stagings[id]
	}
	referenced := map[string]bool{} // upload IDs named by a marker

	markerDir := d.meta("staging/")
	for obj := range d.core.Client.ListObjects(ctx, d.bucket, minio.ListObjectsOptions{Prefix: markerDir, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3store: list staging markers: %w", obj.Err)
		}
		id, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, markerDir), ".json")
		if !ok || !storage.ValidID(id) {
			continue
		}
		m, err := d.marker(ctx, id)
		if err != nil {
			continue // removed meanwhile, or corrupt
		}
		referenced[m.UploadID] = true
		s := get(id)
		s.marker = m
		s.modTime = later(s.modTime, obj.LastModified)
	}

	tailsDir := d.meta("tails/")
	for obj := range d.core.Client.ListObjects(ctx, d.bucket, minio.ListObjectsOptions{Prefix: tailsDir, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3store: list tails: %w", obj.Err)
		}
		id, genStr, ok := strings.Cut(strings.TrimPrefix(obj.Key, tailsDir), "/")
		gen, err := strconv.Atoi(genStr)
		if !ok || err != nil || !storage.ValidID(id) {
			continue
		}
		s := get(id)
		s.modTime = later(s.modTime, obj.LastModified)
		if gen >= s.tailGen {
			s.tailGen, s.tailSize = gen, obj.Size
		}
	}

	var out []storage.Stray
	for id, s := range stagings {
		n := strayName{Kind: "staging", ID: id}
		size := s.tailSize
		if s.marker != nil {
			n.UploadID = s.marker.UploadID
			size += d.partsSize(ctx, id, s.marker.UploadID)
		}
		out = append(out, storage.Stray{Name: n.String(), Size: size, ModTime: s.modTime, SessionID: id})
	}

	keyMarker, uploadMarker := "", ""
	dir := d.prefix + objectsDir
	for {
		res, err := d.core.ListMultipartUploads(ctx, d.bucket, dir, keyMarker, uploadMarker, "", 1000)
		if err != nil {
			return nil, fmt.Errorf("s3store: list multipart uploads: %w", err)
		}
		for _, u := range res.Uploads {
			id := strings.TrimPrefix(u.Key, dir)
			if referenced[u.UploadID] || !storage.ValidID(id) {
				continue
			}
			n := strayName{Kind: "upload", ID: id, UploadID: u.UploadID}
			out = append(out, storage.Stray{Name: n.String(), Size: d.partsSize(ctx, id, u.UploadID), ModTime: u.Initiated})
		}
		if !res.IsTruncated || (res.NextKeyMarker == keyMarker && res.NextUploadIDMarker == uploadMarker) {
			break
		}
		keyMarker, uploadMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// partsSize sums the parts uploaded so far (best effort).
func (d *Driver) partsSize(ctx context.Context, id, uploadID string) int64 {
	var size int64
	marker := 0
	for {
		res, err := d.core.ListObjectParts(ctx, d.bucket, d.objName(id), uploadID, marker, 1000)
		if err != nil {
			return size
		}
		for _, p := range res.ObjectParts {
			size += p.Size
		}
		if !res.IsTruncated || res.NextPartNumberMarker <= marker {
			return size
		}
		marker = res.NextPartNumberMarker
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// RemoveStray removes one leftover found by Strays: a staging area (its
// multipart upload, tails and marker) or an unreferenced multipart upload.
func (d *Driver) RemoveStray(ctx context.Context, s storage.Stray) error {
	var n strayName
	if err := json.Unmarshal([]byte(s.Name), &n); err != nil || !storage.ValidID(n.ID) {
		return fmt.Errorf("s3store: bad stray name %q", s.Name)
	}
	switch n.Kind {
	case "staging":
		if n.UploadID != "" {
			if err := d.abort(ctx, n.ID, n.UploadID); err != nil {
				return err
			}
		}
		return d.DiscardStaging(ctx, &storage.Staging{ID: n.ID})
	case "upload":
		return d.abort(ctx, n.ID, n.UploadID)
	}
	return fmt.Errorf("s3store: unknown stray kind %q", n.Kind)
}

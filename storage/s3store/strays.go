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
	Kind     string `json:"kind"` // "staging", "upload" or "attrs"
	Session  string `json:"session,omitempty"`
	Key      string `json:"key,omitempty"`
	UploadID string `json:"upload_id,omitempty"`
}

func (n strayName) String() string {
	b, _ := json.Marshal(n)
	return string(b)
}

// Strays finds three kinds of leftovers:
//
//   - "staging": a staging marker or tail objects of a session ID that has
//     no session record (with the marker's multipart upload);
//   - "upload": an incomplete multipart upload below the prefix that no
//     staging marker references (ListMultipartUploads), for example one
//     whose marker was never written because the process died;
//   - "attrs": an attrs sidecar whose object does not exist.
//
// A staging area is a stray from the moment it exists until its session
// record is written; callers apply an age threshold on ModTime.
func (d *Driver) Strays(ctx context.Context) ([]storage.Stray, error) {
	ids, err := d.ListSessions(ctx)
	if err != nil {
		return nil, err
	}
	sessions := make(map[string]bool, len(ids))
	for _, id := range ids {
		sessions[id] = true
	}

	type staging struct {
		marker   *marker
		modTime  time.Time
		tailGen  int
		tailSize int64
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
		if !ok || strings.Contains(id, "/") {
			continue
		}
		m, err := d.marker(ctx, id)
		if err != nil {
			continue // removed meanwhile, or corrupt
		}
		referenced[m.UploadID] = true
		if sessions[id] {
			continue
		}
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
		if !ok || err != nil || sessions[id] {
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
		n := strayName{Kind: "staging", Session: id}
		size := s.tailSize
		if s.marker != nil {
			n.Key, n.UploadID = s.marker.Key, s.marker.UploadID
			size += d.partsSize(ctx, s.marker.Key, s.marker.UploadID)
		}
		out = append(out, storage.Stray{Name: n.String(), Size: size, ModTime: s.modTime, SessionID: id})
	}

	keyMarker, uploadMarker := "", ""
	for {
		res, err := d.core.ListMultipartUploads(ctx, d.bucket, d.prefix, keyMarker, uploadMarker, "", 1000)
		if err != nil {
			return nil, fmt.Errorf("s3store: list multipart uploads: %w", err)
		}
		for _, u := range res.Uploads {
			if referenced[u.UploadID] || !strings.HasPrefix(u.Key, d.prefix) {
				continue
			}
			key := strings.TrimPrefix(u.Key, d.prefix)
			if hidden(key) {
				continue
			}
			n := strayName{Kind: "upload", Key: key, UploadID: u.UploadID}
			out = append(out, storage.Stray{Name: n.String(), Size: d.partsSize(ctx, key, u.UploadID), ModTime: u.Initiated})
		}
		if !res.IsTruncated || (res.NextKeyMarker == keyMarker && res.NextUploadIDMarker == uploadMarker) {
			break
		}
		keyMarker, uploadMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}

	attrsDir := d.meta("attrs/")
	for obj := range d.core.Client.ListObjects(ctx, d.bucket, minio.ListObjectsOptions{Prefix: attrsDir, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3store: list attrs: %w", obj.Err)
		}
		key, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, attrsDir), "/.depot-attrs.json")
		if !ok {
			continue
		}
		if _, err := d.core.StatObject(ctx, d.bucket, d.objName(key), minio.StatObjectOptions{}); !notFound(err) {
			continue // the object exists (or we cannot tell)
		}
		n := strayName{Kind: "attrs", Key: key}
		out = append(out, storage.Stray{Name: n.String(), Size: obj.Size, ModTime: obj.LastModified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// partsSize sums the parts uploaded so far (best effort).
func (d *Driver) partsSize(ctx context.Context, key, uploadID string) int64 {
	var size int64
	marker := 0
	for {
		res, err := d.core.ListObjectParts(ctx, d.bucket, d.objName(key), uploadID, marker, 1000)
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

// RemoveStray removes one leftover found by Strays, re-checking first that
// it is still one (a session record or an object may have appeared since).
func (d *Driver) RemoveStray(ctx context.Context, s storage.Stray) error {
	var n strayName
	if err := json.Unmarshal([]byte(s.Name), &n); err != nil {
		return fmt.Errorf("s3store: bad stray name %q", s.Name)
	}
	switch n.Kind {
	case "staging":
		if _, err := d.GetSession(ctx, n.Session); err == nil {
			return nil // adopted meanwhile
		} else if !notFound(err) {
			return err
		}
		if n.UploadID != "" {
			if err := d.abort(ctx, n.Key, n.UploadID); err != nil {
				return err
			}
		}
		if m, err := d.marker(ctx, n.Session); err == nil && m.UploadID != n.UploadID {
			if err := d.abort(ctx, m.Key, m.UploadID); err != nil {
				return err
			}
		}
		if err := d.removeAll(ctx, d.tailDir(n.Session)); err != nil {
			return err
		}
		return d.remove(ctx, d.markerName(n.Session))
	case "upload":
		return d.abort(ctx, n.Key, n.UploadID)
	case "attrs":
		if _, err := d.core.StatObject(ctx, d.bucket, d.objName(n.Key), minio.StatObjectOptions{}); !notFound(err) {
			return err // the object exists again (nil), or we cannot tell
		}
		return d.remove(ctx, d.attrsName(n.Key))
	}
	return fmt.Errorf("s3store: unknown stray kind %q", n.Kind)
}

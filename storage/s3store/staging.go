package s3store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"

	"depot/storage"
)

// maxParts is S3's limit on the parts of one multipart upload; with 8 MiB
// parts an upload can hold about 78 GiB.
const maxParts = 10000

// state is Staging.State: the multipart upload and what has been staged.
// The staged bytes are the parts, in order, followed by the tail, which is
// kept in the object .depot/tails/<id>/<tail_gen> until it grows to a part
// or is sent as the last part by Commit.
type state struct {
	UploadID string `json:"upload_id"`
	Parts    []part `json:"parts"`
	TailSize int64  `json:"tail_size"`
	// TailGen numbers the tail object. Each WriteStaging that changes the
	// tail writes generation TailGen+1 and never touches generation
	// TailGen, which the persisted session record may still reference if
	// the new state is never saved; a retry from that record writes
	// TailGen+1 again, overwriting the orphan.
	TailGen int `json:"tail_gen"`
}

type part struct {
	N      int    `json:"n"`
	ETag   string `json:"etag"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex SHA-256 of the part, as signed when it was sent
}

// marker is the object .depot/staging/<id>.json: it records which multipart
// upload belongs to staging area <id>, for Strays and to tell a live
// staging area from a discarded or published one.
type marker struct {
	UploadID string `json:"upload_id"`
}

func (s *state) partsSize() int64 {
	var n int64
	for _, p := range s.Parts {
		n += p.Size
	}
	return n
}

func (s *state) size() int64 { return s.partsSize() + s.TailSize }

// cut returns the parts that lie wholly before off and how many bytes of
// the tail precede off. An offset inside an uploaded part cannot be cut:
// S3 cannot read a part back to rewrite its beginning.
func (s *state) cut(off int64) ([]part, int64, error) {
	var sum int64
	for i, p := range s.Parts {
		if off == sum {
			return s.Parts[:i:i], 0, nil
		}
		if off < sum+p.Size {
			return nil, 0, fmt.Errorf("s3store: offset %d lies inside uploaded part %d, which S3 cannot rewrite", off, p.N)
		}
		sum += p.Size
	}
	return s.Parts[:len(s.Parts):len(s.Parts)], off - sum, nil
}

func decodeState(st *storage.Staging) (*state, error) {
	if len(st.State) == 0 {
		return nil, fmt.Errorf("s3store: staging area %s has no state: %w", st.ID, storage.ErrNotExist)
	}
	var s state
	if err := json.Unmarshal(st.State, &s); err != nil || s.UploadID == "" {
		return nil, fmt.Errorf("s3store: corrupt staging state of %s: %v", st.ID, err)
	}
	return &s, nil
}

func encodeState(s *state) []byte {
	b, _ := json.Marshal(s) // cannot fail
	return b
}

// live loads the staging state of st and checks that its staging area still
// exists (it was not committed or discarded).
//
// An empty State is read as the state CreateStaging returned (the upload
// named by the marker, nothing staged).
func (d *Driver) live(ctx context.Context, st *storage.Staging) (*state, error) {
	m, err := d.marker(ctx, st.ID)
	if err != nil {
		return nil, err
	}
	if len(st.State) == 0 {
		return &state{UploadID: m.UploadID}, nil
	}
	s, err := decodeState(st)
	if err != nil {
		return nil, err
	}
	if m.UploadID != s.UploadID {
		return nil, fmt.Errorf("s3store: staging area %s was replaced: %w", st.ID, storage.ErrNotExist)
	}
	return s, nil
}

func (d *Driver) marker(ctx context.Context, id string) (*marker, error) {
	b, err := d.getSmall(ctx, d.markerName(id))
	if err != nil {
		return nil, fmt.Errorf("s3store: staging area %s: %w", id, err)
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("s3store: corrupt staging marker %s: %v", id, err)
	}
	return &m, nil
}

// CreateStaging starts a multipart upload for objects/<id> and records it.
func (d *Driver) CreateStaging(ctx context.Context, st *storage.Staging) error {
	if !storage.ValidID(st.ID) {
		return fmt.Errorf("s3store: invalid ID")
	}
	uploadID, err := d.core.NewMultipartUpload(ctx, d.bucket, d.objName(st.ID), minio.PutObjectOptions{
		ContentType: "application/octet-stream",
	})
	if err != nil {
		return fmt.Errorf("s3store: create multipart upload: %w", mapErr(err))
	}
	mb, _ := json.Marshal(marker{UploadID: uploadID})
	if err := d.putSmall(ctx, d.markerName(st.ID), mb, nil); err != nil {
		_ = d.core.AbortMultipartUpload(context.WithoutCancel(ctx), d.bucket, d.objName(st.ID), uploadID)
		return fmt.Errorf("s3store: write staging marker: %w", mapErr(err))
	}
	st.State = encodeState(&state{UploadID: uploadID})
	return nil
}

// WriteStaging appends r to the staged bytes at offset. offset may be
// anywhere in the tail or at a part boundary (the Store always passes the
// end of the staged data); inside an uploaded part it is ErrUnsupported.
// Full 8 MiB buffers are sent as parts as they fill; a remainder of at
// least 5 MiB is sent as a part too, anything smaller becomes the new tail
// object. Memory use is one 8 MiB buffer; nothing touches the local disk.
func (d *Driver) WriteStaging(ctx context.Context, st *storage.Staging, offset int64, r io.Reader) (int64, error) {
	s, err := d.live(ctx, st)
	if err != nil {
		return 0, err
	}
	if staged := s.size(); offset < 0 || offset > staged {
		return 0, fmt.Errorf("s3store: write at offset %d of %d staged bytes", offset, staged)
	}
	parts, keep, err := s.cut(offset)
	if err != nil {
		return 0, err
	}
	bp := d.getBuf()
	defer d.putBuf(bp)
	buf := (*bp)[:0]
	if keep > 0 {
		if buf, err = d.readTail(ctx, st.ID, s, 0, keep, buf); err != nil {
			return 0, err
		}
	}
	var taken int64
	for {
		if err := ctx.Err(); err != nil {
			return taken, err
		}
		if len(buf) == cap(buf) {
			p, err := d.uploadPart(ctx, st, s.UploadID, len(parts)+1, buf)
			if err != nil {
				return taken, err
			}
			parts = append(parts, p)
			buf = buf[:0]
		}
		n, rerr := r.Read(buf[len(buf):min(cap(buf), len(buf)+256<<10)])
		buf = buf[:len(buf)+n]
		taken += int64(n)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return taken, rerr
		}
	}
	if len(buf) >= minPart {
		p, err := d.uploadPart(ctx, st, s.UploadID, len(parts)+1, buf)
		if err != nil {
			return taken, err
		}
		parts = append(parts, p)
		buf = buf[:0]
	}
	next := &state{UploadID: s.UploadID, Parts: parts, TailSize: int64(len(buf)), TailGen: s.TailGen}
	if taken == 0 && offset == s.size() {
		return 0, nil // nothing changed
	}
	next.TailGen = s.TailGen + 1
	if len(buf) > 0 {
		if err := d.putSmall(ctx, d.tailName(st.ID, next.TailGen), buf, nil); err != nil {
			return taken, fmt.Errorf("s3store: write tail: %w", mapErr(err))
		}
	}
	if s.TailGen > 1 {
		// The caller's state is persisted (the Store passes the record's
		// state), so the generation before it is garbage.
		_ = d.remove(ctx, d.tailName(st.ID, s.TailGen-1))
	}
	st.State = encodeState(next)
	return taken, nil
}

// readTail appends the tail bytes [off, off+n) to buf.
func (d *Driver) readTail(ctx context.Context, id string, s *state, off, n int64, buf []byte) ([]byte, error) {
	rc, err := d.openTail(ctx, id, s, off, n)
	if err != nil {
		return buf, err
	}
	defer rc.Close()
	start := len(buf)
	buf = buf[:start+int(n)]
	if _, err := io.ReadFull(rc, buf[start:]); err != nil {
		return buf[:start], fmt.Errorf("s3store: read tail of %s: %w", id, mapErr(err))
	}
	return buf, nil
}

func (d *Driver) openTail(ctx context.Context, id string, s *state, off, n int64) (io.ReadCloser, error) {
	if n == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+n-1); err != nil {
		return nil, err
	}
	rc, info, _, err := d.core.GetObject(ctx, d.bucket, d.tailName(id, s.TailGen), opts)
	if err != nil {
		return nil, fmt.Errorf("s3store: read tail of %s: %w", id, mapErr(err))
	}
	if info.Size != n {
		rc.Close()
		return nil, fmt.Errorf("s3store: tail of %s: got %d bytes, want %d", id, info.Size, n)
	}
	return rc, nil
}

func (d *Driver) uploadPart(ctx context.Context, st *storage.Staging, uploadID string, n int, b []byte) (part, error) {
	if n > maxParts {
		return part{}, fmt.Errorf("s3store: upload %s exceeds %d parts", st.ID, maxParts)
	}
	m, sum := hashes(b)
	p, err := d.core.PutObjectPart(ctx, d.bucket, d.objName(st.ID), uploadID, n, bytes.NewReader(b), int64(len(b)),
		minio.PutObjectPartOptions{Md5Base64: m, Sha256Hex: sum, DisableContentSha256: true})
	if err != nil {
		return part{}, fmt.Errorf("s3store: upload part %d: %w", n, mapErr(err))
	}
	return part{N: n, ETag: p.ETag, Size: int64(len(b)), SHA256: sum}, nil
}

// Publish sends the tail as the last part and completes the multipart
// upload as objects/<id>. An empty object is a plain PUT of zero bytes (S3
// cannot complete an upload without parts). A staging area already
// published (no marker, the object there) is a success.
func (d *Driver) Publish(ctx context.Context, st *storage.Staging, size int64) error {
	s, err := d.live(ctx, st)
	if notFound(err) {
		if _, serr := d.core.StatObject(ctx, d.bucket, d.objName(st.ID), minio.StatObjectOptions{}); serr == nil {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if staged := s.size(); size < 0 || size > staged {
		return fmt.Errorf("s3store: publish of %d bytes, %d staged", size, staged)
	}
	parts, keep, err := s.cut(size)
	if err != nil {
		return err
	}
	obj := d.objName(st.ID)
	if size == 0 {
		if err := d.putSmall(ctx, obj, nil, nil); err != nil {
			return fmt.Errorf("s3store: write empty object: %w", mapErr(err))
		}
		_ = d.core.AbortMultipartUpload(ctx, d.bucket, obj, s.UploadID) // else left for Strays
		return d.cleanup(ctx, st.ID)
	}
	if keep > 0 {
		bp := d.getBuf()
		buf, err := d.readTail(ctx, st.ID, s, 0, keep, (*bp)[:0])
		if err == nil {
			var p part
			p, err = d.uploadPart(ctx, st, s.UploadID, len(parts)+1, buf)
			parts = append(parts, p)
		}
		d.putBuf(bp)
		if err != nil {
			return d.alreadyPublished(ctx, st, size, err)
		}
	}
	cparts := make([]minio.CompletePart, len(parts))
	for i, p := range parts {
		cparts[i] = minio.CompletePart{PartNumber: p.N, ETag: p.ETag}
	}
	if _, err := d.core.CompleteMultipartUpload(ctx, d.bucket, obj, s.UploadID, cparts, minio.PutObjectOptions{}); err != nil {
		return d.alreadyPublished(ctx, st, size, fmt.Errorf("s3store: complete multipart upload: %w", mapErr(err)))
	}
	return d.cleanup(ctx, st.ID)
}

// alreadyPublished handles a Publish retried after the multipart upload was
// completed but before the marker was removed: the upload is gone and the
// object is there with the expected size.
func (d *Driver) alreadyPublished(ctx context.Context, st *storage.Staging, size int64, err error) error {
	if !notFound(err) {
		return err
	}
	info, serr := d.core.StatObject(ctx, d.bucket, d.objName(st.ID), minio.StatObjectOptions{})
	if serr != nil || info.Size != size {
		return err
	}
	return d.cleanup(ctx, st.ID)
}

// cleanup releases what is left of a published staging area. The object is
// durable already, so failures only leave strays behind.
func (d *Driver) cleanup(ctx context.Context, id string) error {
	ctx = context.WithoutCancel(ctx)
	_ = d.removeAll(ctx, d.tailDir(id))
	_ = d.remove(ctx, d.markerName(id))
	return nil
}

// DiscardStaging aborts the multipart upload and deletes the tail and the
// marker. A staging area that is already gone is not an error.
func (d *Driver) DiscardStaging(ctx context.Context, st *storage.Staging) error {
	m, err := d.marker(ctx, st.ID)
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		return err
	}
	if m != nil {
		if err := d.abort(ctx, st.ID, m.UploadID); err != nil {
			return err
		}
	}
	if s, err := decodeState(st); err == nil && (m == nil || s.UploadID != m.UploadID) {
		if err := d.abort(ctx, st.ID, s.UploadID); err != nil {
			return err
		}
	}
	if err := d.removeAll(ctx, d.tailDir(st.ID)); err != nil {
		return fmt.Errorf("s3store: delete tail: %w", err)
	}
	if err := d.remove(ctx, d.markerName(st.ID)); err != nil {
		return fmt.Errorf("s3store: delete staging marker: %w", err)
	}
	return nil
}

func (d *Driver) abort(ctx context.Context, id, uploadID string) error {
	err := d.core.AbortMultipartUpload(ctx, d.bucket, d.objName(id), uploadID)
	if err != nil && !notFound(err) {
		return fmt.Errorf("s3store: abort multipart upload: %w", err)
	}
	return nil
}

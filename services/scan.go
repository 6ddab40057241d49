package services

import (
	"context"
	"io"

	"depot"
	"depot/scan"
	"depot/servicedb"
	"depot/storage"
)

// The malware scan's hooks on the upload path (docs/scanning.md). With
// Config.Scan nil they do nothing. The Gate streams each chunk's accepted
// bytes to clamd as the Store writes them (scanTee), and its verdict gates
// the commit (scanVerdict): a version becomes current only clean, or
// unscanned under an explicit policy.

// scanAdmit refuses an upload of a declared size the scanner cannot take
// (oversize policy "refuse"), before any byte is read.
func (c *Core) scanAdmit(size int64) error {
	if c.cfg.Scan == nil {
		return nil
	}
	return c.cfg.Scan.Admit(size)
}

// scanTee returns ch with its bytes also streamed to the scan of upload id,
// and the function to call with the append's outcome.
func (c *Core) scanTee(ctx context.Context, id string, ch storage.Chunk) (storage.Chunk, func(error, int64)) {
	if c.cfg.Scan == nil {
		return ch, func(error, int64) {}
	}
	return c.cfg.Scan.Tee(ctx, id, ch)
}

// scanVerdict gets the verdict on upload id, whose bytes are s, before its
// commit, and records it in v and in its audit record ev. Its error
// (infected, too large, scanner unavailable) refuses the commit.
func (c *Core) scanVerdict(ctx context.Context, id string, s storage.Stored, v *servicedb.Version, ev *depot.AuditEvent) error {
	if c.cfg.Scan == nil {
		return nil
	}
	verdict, err := c.cfg.Scan.Verdict(ctx, id, s.Size, func(ctx context.Context) (io.ReadCloser, error) {
		return c.cfg.Store.Open(ctx, s.ID, 0, -1)
	})
	if err != nil {
		return err
	}
	v.Scan = verdict.Status
	verdict.AddTo(&ev.Metadata)
	return nil
}

// scanRefused completes the failure record ev of an upload refused for err:
// an infected upload's record gets its verdict, and the alert fires once the
// record is written (after).
func (c *Core) scanRefused(ctx context.Context, ev *depot.AuditEvent, err error) (after func()) {
	verdict, ok := scan.VerdictOf(err)
	if !ok {
		return func() {}
	}
	verdict.AddTo(&ev.Metadata)
	return func() {
		c.log.Warn("infected upload refused", "upload_id", ev.UploadID, "signature", verdict.Signature, "request_id", ev.CorrelationID)
		if c.cfg.OnInfected != nil {
			c.cfg.OnInfected(context.WithoutCancel(ctx), ev.UploadID, verdict.Signature)
		}
	}
}

// scanDrop abandons the scan stream of upload id.
func (c *Core) scanDrop(id string) {
	if c.cfg.Scan != nil {
		c.cfg.Scan.Drop(id)
	}
}

package web

import (
	"path"

	"github.com/pkg/sftp"

	"depot"
)

// rename moves a file within a cohort, for its managers. Versions are
// immutable, so a rename is made of operations services already has, each
// authorised and audited on its own: the current version is streamed from
// services into a new version at the target (through web's memory, like
// any upload: admitted, chunked, its SHA-256 declared from the source's and
// verified by services), then the source is deleted (a delete marker: its
// history stays, as for rm). A failure before the delete leaves the source
// as it was; one after the copy leaves both files, never neither. Rename
// (SFTP v3) refuses an existing target; posix-rename@openssh.com replaces
// it with a new version. Directories cannot be renamed: they are implied
// by file paths.
func (fs *sftpFS) rename(r *sftp.Request, from sftpPath) error {
	to, err := parsePath(r.Target)
	if err != nil {
		return sftpError(err)
	}
	switch {
	case from.key == "" || to.key == "":
		return sftpStatus(sftp.ErrSSHFxPermissionDenied, "cohorts cannot be renamed")
	case from.cohort != to.cohort:
		return sftpStatus(sftp.ErrSSHFxOpUnsupported, "files move only within their cohort")
	case from.key == to.key:
		return nil
	}
	b := fs.s.cfg.Backend
	c := fs.caller()
	if _, err := b.Authorize(fs.ctx, c, from.cohort, depot.PermDelete); err != nil {
		return sftpError(err) // managers only: a rename deletes the source
	}
	src, err := b.Stat(fs.ctx, c, from.key, "")
	if depot.ErrorCode(err) == depot.CodeNotFound {
		if page, lerr := b.List(fs.ctx, c, from.key+"/", "", 1); lerr == nil && len(page.Objects) > 0 {
			return sftpStatus(sftp.ErrSSHFxOpUnsupported, "depot cannot rename a directory; move its files one by one")
		}
	}
	if err != nil {
		return sftpError(err)
	}
	opts := depot.PutOptions{Size: src.Size, SHA256: src.SHA256, Class: src.Class}
	if r.Method == "Rename" {
		opts.IfNoneMatch = "*" // SFTP v3: the target must not exist
	}
	a, err := fs.s.admit(fs.ctx, c, to.cohort, 0, src.Size)
	if err != nil {
		return sftpError(err)
	}
	defer a.release()
	d, err := b.Open(fs.ctx, c, from.key, depot.ReadOptions{Version: src.Version})
	if err != nil {
		return sftpError(err)
	}
	_, err = b.Put(fs.ctx, fs.caller(), to.key, d.Body, opts, path.Base(to.key))
	d.Body.Close()
	switch {
	case depot.ErrorCode(err) == depot.CodePrecondition:
		return sftpStatus(sftp.ErrSSHFxFailure, "the target exists (posix-rename replaces it)")
	case err != nil:
		return sftpError(err)
	}
	fs.s.cfg.Log.Info("sftp rename copied; deleting the source", "version", src.Version, "request_id", c.RequestID)
	return sftpError(b.Delete(fs.ctx, fs.caller(), from.key))
}

package web

import (
	"context"
	"errors"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"

	"depot"
	"depot/internal/httpx"
)

// sftpFS is the tree one SFTP session sees: "/" holds a directory per
// cohort the user has a role in, and "/<cohort>/<path>" are its files.
// Directories are implied by file paths; mkdir makes a virtual one that
// lives as long as the session (depot stores no empty folder).
type sftpFS struct {
	s    *Server
	ctx  context.Context
	base depot.Caller // the connection's credential
	user string

	mu      sync.Mutex
	dirs    map[string]bool        // keys of directories made by mkdir
	writing map[string]*sftpWriter // open write handles by key
}

func (s *Server) newSFTPFS(ctx context.Context, base depot.Caller, user string) *sftpFS {
	return &sftpFS{s: s, ctx: ctx, base: base, user: user, dirs: map[string]bool{}, writing: map[string]*sftpWriter{}}
}

func (fs *sftpFS) handlers() sftp.Handlers {
	return sftp.Handlers{FileGet: fs, FilePut: fs, FileCmd: fs, FileList: fs}
}

// caller is the connection's credential with a new request ID.
func (fs *sftpFS) caller() depot.Caller {
	c := fs.base
	c.RequestID = httpx.NewID()
	return c
}

// sftpPath is a path of the tree: the root (cohort ""), a cohort (key ""),
// or a key within a cohort.
type sftpPath struct{ cohort, key string }

// parsePath reads an absolute path (pkg/sftp cleans it: no "." or ".."
// is left) and applies the key policy to it.
func parsePath(p string) (sftpPath, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return sftpPath{}, nil
	}
	cohort, rest, _ := strings.Cut(p, "/")
	c, err := depot.CleanKey(cohort)
	if err != nil {
		return sftpPath{}, local(err)
	}
	if rest == "" {
		return sftpPath{cohort: c}, nil
	}
	key, err := depot.CleanKey(c + "/" + rest)
	if err != nil {
		return sftpPath{}, local(err)
	}
	return sftpPath{cohort: c, key: key}, nil
}

// Filecmd handles mkdir (virtual), rmdir, rm and refuses the rest.
func (fs *sftpFS) Filecmd(r *sftp.Request) error {
	p, err := parsePath(r.Filepath)
	if err != nil {
		return sftpError(err)
	}
	switch r.Method {
	case "Setstat":
		// Modes and times are not kept; a size change is not possible.
		// Modes and times are not kept. A size is accepted only when it is
		// the file's (scp sets it after writing), never to truncate.
		if r.AttrFlags().Size && !fs.hasSize(p, int64(r.Attributes().Size)) {
			return sftpStatus(sftp.ErrSSHFxOpUnsupported, "depot cannot change the size of a file")
		}
		return nil
	case "Mkdir":
		if p.key == "" {
			return sftpStatus(sftp.ErrSSHFxPermissionDenied, "cohorts are created by an administrator")
		}
		if _, err := fs.s.cfg.Backend.Authorize(fs.ctx, fs.caller(), p.cohort, depot.PermList); err != nil {
			return sftpError(err)
		}
		fs.mu.Lock()
		defer fs.mu.Unlock()
		if len(fs.dirs) >= sftpMaxVirtualDirs {
			return sftpStatus(sftp.ErrSSHFxFailure, "too many empty directories in this session; put files in them first")
		}
		fs.dirs[p.key] = true
		return nil
	case "Rmdir":
		if p.key == "" {
			return sftpStatus(sftp.ErrSSHFxPermissionDenied, "cohorts are removed by an administrator")
		}
		page, err := fs.s.cfg.Backend.List(fs.ctx, fs.caller(), p.key+"/", "", 1)
		if err != nil {
			return sftpError(err)
		}
		if len(page.Objects) > 0 {
			return sftpStatus(sftp.ErrSSHFxFailure, "the directory is not empty")
		}
		fs.mu.Lock()
		delete(fs.dirs, p.key)
		fs.mu.Unlock()
		return nil
	case "Remove":
		if p.key == "" {
			return sftpStatus(sftp.ErrSSHFxPermissionDenied, "cohorts are removed by an administrator")
		}
		fs.s.sftpResumes.forget(fs.user, p.key) // rm also ends a cut upload of the path
		return sftpError(fs.s.cfg.Backend.Delete(fs.ctx, fs.caller(), p.key))
	case "Rename", "PosixRename":
		return fs.rename(r, p)
	}
	return sftpStatus(sftp.ErrSSHFxOpUnsupported, "depot does not support "+strings.ToLower(r.Method))
}

// hasSize reports whether the file at p (being written through this
// session, or stored) has size bytes.
func (fs *sftpFS) hasSize(p sftpPath, size int64) bool {
	if p.key == "" {
		return false
	}
	fs.mu.Lock()
	w := fs.writing[p.key]
	fs.mu.Unlock()
	if w != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.next == size && len(w.pieces) == 0
	}
	fi, err := fs.stat(p)
	return err == nil && !fi.IsDir() && fi.Size() == size
}

// Filelist handles ls and stat.
func (fs *sftpFS) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	p, err := parsePath(r.Filepath)
	if err != nil {
		return nil, sftpError(err)
	}
	switch r.Method {
	case "List":
		infos, err := fs.list(p)
		return listerAt(infos), sftpError(err)
	case "Stat":
		fi, err := fs.stat(p)
		if err != nil {
			return nil, sftpError(err)
		}
		return listerAt{fi}, nil
	}
	return nil, sftpStatus(sftp.ErrSSHFxOpUnsupported, "depot has no symbolic links")
}

// stat describes a path. A path with a cut upload of this user (that reput
// would continue) reports the bytes the upload holds, ahead of any stored
// version: the offset a client resumes from.
func (fs *sftpFS) stat(p sftpPath) (os.FileInfo, error) {
	switch {
	case p.cohort == "":
		return dirInfo("/"), nil
	case p.key == "":
		pr, err := fs.s.cfg.Backend.Authorize(fs.ctx, fs.caller(), "", "")
		if err != nil {
			return nil, err
		}
		if _, ok := pr.Grants[p.cohort]; !ok && !pr.Admin {
			return nil, depot.Errorf(depot.CodeNotFound, "no such cohort")
		}
		return dirInfo(p.cohort), nil
	}
	if id, ok := fs.s.sftpResumes.get(fs.user, p.key); ok {
		if u, err := fs.s.cfg.Backend.Upload(fs.ctx, fs.caller(), id, false); err == nil && !u.Completed {
			return fileInfo{name: path.Base(p.key), size: u.Offset, mtime: u.Updated}, nil
		}
		fs.s.sftpResumes.forget(fs.user, p.key)
	}
	o, err := fs.s.cfg.Backend.Stat(fs.ctx, fs.caller(), p.key, "")
	if depot.ErrorCode(err) == depot.CodeForbidden {
		// An uploader may not read a file but may list its cohort: stat
		// tells what the listing tells (clients stat before they write).
		o, err = fs.statListed(p.key)
	}
	if err == nil {
		return fileInfo{name: path.Base(p.key), size: o.Size, mtime: o.ModTime}, nil
	}
	if depot.ErrorCode(err) != depot.CodeNotFound {
		return nil, err
	}
	fs.mu.Lock()
	made := fs.dirs[p.key]
	fs.mu.Unlock()
	if made {
		return dirInfo(path.Base(p.key)), nil
	}
	page, lerr := fs.s.cfg.Backend.List(fs.ctx, fs.caller(), p.key+"/", "", 1)
	if lerr == nil && len(page.Objects) > 0 {
		return dirInfo(path.Base(p.key)), nil
	}
	return nil, err
}

// statListed finds key in the listing of its directory: the page of keys
// just after one a little smaller than key.
func (fs *sftpFS) statListed(key string) (depot.Object, error) {
	dir := path.Dir(key) + "/"
	page, err := fs.s.cfg.Backend.List(fs.ctx, fs.caller(), dir, key[:len(key)-1], 0)
	if err != nil {
		return depot.Object{}, err
	}
	for _, o := range page.Objects {
		if o.Key == key {
			return o, nil
		}
	}
	return depot.Object{}, depot.Errorf(depot.CodeNotFound, "no such file")
}

// sftpMaxVirtualDirs bounds the directories mkdir remembers per session.
const sftpMaxVirtualDirs = 10000

// sftpMaxListPages bounds the pages one directory listing reads.
const sftpMaxListPages = 100

// list returns the entries of a directory: cohorts at the root, else the
// files and the first segments of deeper paths under it.
func (fs *sftpFS) list(p sftpPath) ([]os.FileInfo, error) {
	if p.cohort == "" {
		pr, err := fs.s.cfg.Backend.Authorize(fs.ctx, fs.caller(), "", "")
		if err != nil {
			return nil, err
		}
		var out []os.FileInfo
		for cohort := range pr.Grants {
			out = append(out, dirInfo(cohort))
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
		return out, nil
	}
	prefix := p.cohort + "/"
	if p.key != "" {
		prefix = p.key + "/"
	}
	var out []os.FileInfo
	seen := map[string]bool{}
	after := ""
	for range sftpMaxListPages {
		page, err := fs.s.cfg.Backend.List(fs.ctx, fs.caller(), prefix, after, 0)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Objects {
			rest := strings.TrimPrefix(o.Key, prefix)
			if dir, _, deeper := strings.Cut(rest, "/"); deeper {
				if !seen[dir] {
					seen[dir] = true
					out = append(out, dirInfo(dir))
				}
				continue
			}
			out = append(out, fileInfo{name: rest, size: o.Size, mtime: o.ModTime})
		}
		if after = page.Next; after == "" {
			break
		}
	}
	fs.mu.Lock()
	for d := range fs.dirs {
		if rest, ok := strings.CutPrefix(d, prefix); ok && !strings.Contains(rest, "/") && !seen[rest] {
			seen[rest] = true
			out = append(out, dirInfo(rest))
		}
	}
	fs.mu.Unlock()
	return out, nil
}

// fileInfo describes a file or directory of the tree.
type fileInfo struct {
	name  string
	size  int64
	mtime time.Time
	dir   bool
}

func dirInfo(name string) fileInfo { return fileInfo{name: name, dir: true} }

func (f fileInfo) Name() string       { return f.name }
func (f fileInfo) Size() int64        { return f.size }
func (f fileInfo) ModTime() time.Time { return f.mtime }
func (f fileInfo) IsDir() bool        { return f.dir }
func (f fileInfo) Sys() any           { return nil }
func (f fileInfo) Mode() os.FileMode {
	if f.dir {
		return os.ModeDir | 0o755
	}
	return 0o644
}

// listerAt serves a listing held in memory.
type listerAt []os.FileInfo

func (l listerAt) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}

// statusErr is an SFTP status with its message: code is one of the
// sftp.ErrSSHFx… values, which pkg/sftp finds with errors.As.
type statusErr struct {
	code error
	msg  string
}

func (e *statusErr) Error() string { return e.msg }
func (e *statusErr) Unwrap() error { return e.code }

func sftpStatus(code error, msg string) error { return &statusErr{code: code, msg: msg} }

// sftpError turns an error of a depot operation into an SFTP status with
// the wording the HTTP entrances use (nothing of services reaches the
// client).
func sftpError(err error) error {
	if err == nil {
		return nil
	}
	var se *statusErr
	if errors.As(err, &se) {
		return se
	}
	code := depot.ErrorCode(err)
	msg := publicMessage(code)
	var l *localError
	if asLocal(err, &l) {
		msg = depot.ErrorMessage(l.err)
	}
	switch code {
	case depot.CodeNotFound:
		return sftpStatus(sftp.ErrSSHFxNoSuchFile, msg)
	case depot.CodeForbidden, depot.CodeUnauthorized:
		return sftpStatus(sftp.ErrSSHFxPermissionDenied, msg)
	}
	return sftpStatus(sftp.ErrSSHFxFailure, msg)
}

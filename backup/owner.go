package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Owner is a numeric user and group.
type Owner struct{ UID, GID int }

// OwnerFor returns the owner that files restored under path must have:
// the owner of path, or of its nearest existing parent when path does not
// exist yet (a new host: the service user's data directory).
func OwnerFor(path string) (Owner, error) {
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				return Owner{}, errors.New("file ownership is not available on this system")
			}
			return Owner{UID: int(st.Uid), GID: int(st.Gid)}, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || p == filepath.Dir(p) {
			return Owner{}, err
		}
	}
}

// CheckRunAs refuses to restore into path as a user who is neither root
// nor its owner: the files written would belong to the wrong user, and the
// service (which runs as the owner) could not use them.
func CheckRunAs(path string) error {
	want, err := OwnerFor(path)
	if err != nil {
		return err
	}
	if uid := os.Geteuid(); uid != 0 && uid != want.UID {
		return fmt.Errorf("%s belongs to uid %d but this restore runs as uid %d: run it as the service user "+
			"(sudo -u depot depot restore …) or as root, which gives restored files the owner of the directory", path, want.UID, uid)
	}
	return nil
}

// FixOwnership, when the process runs as root, gives path and every entry
// below it the owner o (symbolic links themselves, not their targets). It
// returns how many entries it changed; as another user it changes nothing
// (CheckRunAs made sure that user is the owner).
func FixOwnership(path string, o Owner) (int, error) {
	if os.Geteuid() != 0 {
		return 0, nil
	}
	n := 0
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile (a staging area)
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != o.UID || int(st.Gid) != o.GID) {
			if err := os.Lchown(p, o.UID, o.GID); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

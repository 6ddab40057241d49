package localstore

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"strings"

	"depot/storage"
)

// Strays walks the whole tree and reports leftovers of crashes:
//
//   - .depot-part-<id> files whose session record <id> does not exist;
//   - .depot-tmp-* files anywhere (temporary files of interrupted writes);
//   - .depot/sessions/.tmp-* files (interrupted session record writes).
//
// Name is the root-relative path. A staging file is created before its
// session record may be written, so callers should only remove strays that
// are older than a grace period (ModTime).
func (d *Driver) Strays(ctx context.Context) ([]storage.Stray, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []storage.Stray
	err := fs.WalkDir(d.root.FS(), ".", func(name string, de fs.DirEntry, err error) error {
		if err != nil {
			if isNotExist(err) {
				return nil // removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if name == internalDir {
			return d.sessionStrays(&out)
		}
		base := path.Base(name)
		if de.IsDir() {
			if strings.HasPrefix(base, internalDir) && name != "." {
				return fs.SkipDir
			}
			return nil
		}
		if !de.Type().IsRegular() {
			return nil
		}
		s, ok, err := d.classify(name, base)
		if err != nil || !ok {
			return err
		}
		if info, err := de.Info(); err == nil {
			s.Size, s.ModTime = info.Size(), info.ModTime()
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, fail("find strays", err)
	}
	return out, nil
}

// classify decides whether the regular file name (with base name base) is a
// stray.
func (d *Driver) classify(name, base string) (storage.Stray, bool, error) {
	if strings.HasPrefix(base, tmpPrefix) {
		return storage.Stray{Name: name}, true, nil
	}
	id, ok := strings.CutPrefix(base, partPrefix)
	if !ok {
		return storage.Stray{}, false, nil
	}
	live, err := d.hasSession(id)
	if err != nil || live {
		return storage.Stray{}, false, err
	}
	s := storage.Stray{Name: name}
	if checkID(id) == nil {
		s.SessionID = id
	}
	return s, true, nil
}

// sessionStrays appends the temporary files of interrupted session record
// writes and tells WalkDir to skip the internal directory.
func (d *Driver) sessionStrays(out *[]storage.Stray) error {
	des, err := fs.ReadDir(d.root.FS(), sessionsDir)
	if err != nil && !isNotExist(err) {
		return err
	}
	for _, de := range des {
		if !de.Type().IsRegular() || !strings.HasPrefix(de.Name(), sessTmp) {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue
		}
		*out = append(*out, storage.Stray{
			Name:    path.Join(sessionsDir, de.Name()),
			Size:    info.Size(),
			ModTime: info.ModTime(),
		})
	}
	return fs.SkipDir
}

// RemoveStray removes a leftover reported by Strays. It refuses any name that
// Strays could not have reported, and a staging file whose session record
// exists again. A missing file is not an error.
func (d *Driver) RemoveStray(ctx context.Context, s storage.Stray) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := s.Name
	if name == "" || !fs.ValidPath(name) {
		return errors.New("localstore: remove stray: invalid name")
	}
	base, dir := path.Base(name), path.Dir(name)
	isSessTmp := dir == sessionsDir && strings.HasPrefix(base, sessTmp)
	if !isSessTmp {
		if dir != "." && checkKey(dir) != nil {
			return errors.New("localstore: remove stray: invalid name")
		}
		_, ok, err := d.classify(name, base)
		if err != nil {
			return fail("remove stray", err)
		}
		if !ok {
			return errors.New("localstore: remove stray: not a stray")
		}
	}
	if err := d.root.Remove(name); err != nil && !isNotExist(err) {
		return fail("remove stray", err)
	}
	if !isSessTmp {
		d.pruneDirs(dir)
	}
	return nil
}

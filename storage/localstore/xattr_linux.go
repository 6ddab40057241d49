//go:build linux

package localstore

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"depot/storage"
)

// Extended attribute names of the object attributes.
const (
	xattrSHA256 = "user.depot.sha256"
	xattrClass  = "user.depot.class"
)

// setAttrs records attrs on the open file f; an empty value removes the
// attribute.
func setAttrs(f *os.File, attrs storage.Attrs) error {
	return withFd(f, func(fd int) error {
		for _, a := range [...]struct{ name, value string }{
			{xattrSHA256, attrs.SHA256},
			{xattrClass, attrs.Class},
		} {
			var err error
			if a.value == "" {
				err = unix.Fremovexattr(fd, a.name)
				if errors.Is(err, unix.ENODATA) {
					err = nil
				}
			} else {
				err = unix.Fsetxattr(fd, a.name, []byte(a.value), 0)
			}
			if err != nil {
				return xattrError("set attributes", err)
			}
		}
		return nil
	})
}

// getAttrs reads the object attributes of the open file f; a missing
// attribute reads as "".
func getAttrs(f *os.File) (storage.Attrs, error) {
	var attrs storage.Attrs
	err := withFd(f, func(fd int) error {
		var err error
		if attrs.SHA256, err = getxattr(fd, xattrSHA256); err != nil {
			return err
		}
		attrs.Class, err = getxattr(fd, xattrClass)
		return err
	})
	return attrs, err
}

func getxattr(fd int, name string) (string, error) {
	buf := make([]byte, 128)
	for {
		n, err := unix.Fgetxattr(fd, name, buf)
		switch {
		case err == nil:
			return string(buf[:n]), nil
		case errors.Is(err, unix.ENODATA):
			return "", nil
		case errors.Is(err, unix.ERANGE) && len(buf) < 1<<16:
			buf = make([]byte, 4*len(buf))
		default:
			return "", xattrError("get attributes", err)
		}
	}
}

// withFd runs fn with the file descriptor of f without switching f to
// blocking mode (as f.Fd would).
func withFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("localstore: %w", err)
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return fmt.Errorf("localstore: %w", err)
	}
	return fnErr
}

func xattrError(op string, err error) error {
	if errors.Is(err, unix.ENOTSUP) {
		return fmt.Errorf("localstore: %s: the file system does not support user extended attributes: %w", op, err)
	}
	return fmt.Errorf("localstore: %s: %w", op, err)
}

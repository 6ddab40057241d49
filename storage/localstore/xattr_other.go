//go:build !linux

package localstore

import (
	"errors"
	"os"

	"depot/storage"
)

var errNoXattr = errors.New("localstore: object attributes (extended attributes) are only implemented on Linux")

func setAttrs(*os.File, storage.Attrs) error { return errNoXattr }

func getAttrs(*os.File) (storage.Attrs, error) { return storage.Attrs{}, errNoXattr }

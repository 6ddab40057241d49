//go:build unix

package metrics

import "golang.org/x/sys/unix"

func volume(path string) (VolumeStats, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return VolumeStats{}, err
	}
	bs := uint64(st.Bsize)
	return VolumeStats{
		Size: uint64(st.Blocks) * bs, Available: uint64(st.Bavail) * bs,
		Files: uint64(st.Files), FilesFree: uint64(st.Ffree),
	}, nil
}

//go:build !unix

package metrics

import "errors"

func volume(string) (VolumeStats, error) {
	return VolumeStats{}, errors.New("measuring a volume is not supported on this system")
}

package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// VolumeStats describes the file system that holds a path.
type VolumeStats struct {
	Size      uint64 // bytes of the file system
	Available uint64 // bytes an unprivileged writer may still use (what a service user gets)
	Files     uint64 // inodes of the file system (0 when it has no fixed number)
	FilesFree uint64 // inodes still free
}

// Volume measures the file system that holds path (statfs(2)). It is what
// depot_storage_volume_* export and what a "storage full" check should call.
func Volume(path string) (VolumeStats, error) { return volume(path) }

// WatchVolume exports the free and total space of the file system holding
// path (the local storage directory) on every scrape:
// depot_storage_volume_available_bytes, depot_storage_volume_size_bytes,
// and the inode counterparts. A path that cannot be measured exports
// nothing and counts in depot_storage_volume_errors_total.
func (s *Set) WatchVolume(path string) {
	s.Registry.MustRegister(newVolumeCollector(s.tier, path))
}

type volumeCollector struct {
	path                          string
	avail, size, files, filesFree *prometheus.Desc
	errors                        prometheus.Counter
}

func newVolumeCollector(tier, path string) *volumeCollector {
	cl := prometheus.Labels{"tier": tier}
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("depot_storage_volume_"+name, help, nil, cl)
	}
	return &volumeCollector{
		path:      path,
		avail:     desc("available_bytes", "Bytes still available to depot on the file system of the local storage."),
		size:      desc("size_bytes", "Size in bytes of the file system of the local storage."),
		files:     desc("files", "Inodes of the file system of the local storage (0: not fixed)."),
		filesFree: desc("files_free", "Free inodes of the file system of the local storage."),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "depot", Name: "storage_volume_errors_total",
			Help: "Scrapes at which the storage volume could not be measured.", ConstLabels: cl}),
	}
}

func (c *volumeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.avail
	ch <- c.size
	ch <- c.files
	ch <- c.filesFree
	c.errors.Describe(ch)
}

func (c *volumeCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := Volume(c.path)
	if err != nil {
		c.errors.Inc()
	} else {
		ch <- prometheus.MustNewConstMetric(c.avail, prometheus.GaugeValue, float64(st.Available))
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(st.Size))
		ch <- prometheus.MustNewConstMetric(c.files, prometheus.GaugeValue, float64(st.Files))
		ch <- prometheus.MustNewConstMetric(c.filesFree, prometheus.GaugeValue, float64(st.FilesFree))
	}
	c.errors.Collect(ch)
}

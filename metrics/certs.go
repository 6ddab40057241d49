package metrics

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// WatchCertificates exports depot_certificate_expiry_seconds{certificate}:
// the seconds until the earliest expiry among the certificates of each
// configured PEM file, computed at every scrape (negative once expired).
// files maps the name of the setting (DEPOT_TLS_CERT, DEPOT_SERVICES_CA, …)
// to its file; empty names are skipped. The files are read now, as the
// listeners read them once at start: the metric describes the certificates
// this process serves and trusts until it is restarted.
func (s *Set) WatchCertificates(files map[string]string, now func() time.Time) error {
	if now == nil {
		now = time.Now
	}
	c := &certCollector{now: now, desc: prometheus.NewDesc("depot_certificate_expiry_seconds",
		"Seconds until the earliest certificate in a configured PEM file expires (negative: expired).",
		[]string{"certificate"}, prometheus.Labels{"tier": s.tier})}
	for name, file := range files {
		if file == "" {
			continue
		}
		notAfter, err := EarliestExpiry(file)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		c.certs = append(c.certs, watchedCert{name: name, notAfter: notAfter})
	}
	sort.Slice(c.certs, func(i, j int) bool { return c.certs[i].name < c.certs[j].name })
	if len(c.certs) == 0 {
		return nil
	}
	return s.Registry.Register(c)
}

// EarliestExpiry returns the earliest NotAfter of the certificates in a
// PEM file (a certificate, a chain or a CA bundle).
func EarliestExpiry(file string) (time.Time, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return time.Time{}, err
	}
	var earliest time.Time
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return time.Time{}, err
		}
		if earliest.IsZero() || cert.NotAfter.Before(earliest) {
			earliest = cert.NotAfter
		}
	}
	if earliest.IsZero() {
		return time.Time{}, errors.New("no PEM certificate in the file")
	}
	return earliest, nil
}

type watchedCert struct {
	name     string
	notAfter time.Time
}

type certCollector struct {
	now   func() time.Time
	desc  *prometheus.Desc
	certs []watchedCert
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, w := range c.certs {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, w.notAfter.Sub(now).Seconds(), w.name)
	}
}

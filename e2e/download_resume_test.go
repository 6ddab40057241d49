package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"depot"
	"depot/servicedb"
)

// TestDownloadResumedAfterCut cuts a download on each hop with a fault
// proxy — between the client and web, and between web and services — on
// every connection, after 1.5 MiB of a 12 MiB file, so that `depot
// download` exhausts its retries (each of them already a Range request
// from what it had) and exits 5 leaving a partial file. A second run continues that partial file with a Range
// request from its size (the audit trail's download record says which
// range services sent) and ends with the file byte for byte, its SHA-256
// verified.
func TestDownloadResumedAfterCut(t *testing.T) {
	for _, hop := range []string{"client-web", "web-services"} {
		t.Run(hop, func(t *testing.T) {
			var armed atomic.Bool
			armed.Store(true)
			cutEvery := func(int64) fault {
				if armed.Load() {
					return fault{downAt: 3 << 19}
				}
				return fault{}
			}
			var proxy *faultProxy
			o := clusterOpts{}
			if hop == "web-services" {
				o.servicesURL = func(addr string) string {
					proxy = newFaultProxy(t, addr, cutEvery)
					return proxy.url()
				}
			}
			c := newCluster(t, o)
			if hop == "client-web" {
				proxy = newFaultProxy(t, c.web.addr, cutEvery)
			}
			data, sum := payloadBytes(71, 12<<20+5)
			armed.Store(false) // the upload passes
			expectStatus(t, c.do("PUT", "/api/v1/files/c1/scan.bin", bytes.NewReader(data), nil), http.StatusCreated)
			armed.Store(true)
			proxy.resetAll() // web's pooled connections were planned unarmed

			url := c.web.url()
			if hop == "client-web" {
				url = proxy.url()
			}
			env := map[string]string{"DEPOT_URL": url, "DEPOT_TOKEN": c.token}
			dst := filepath.Join(t.TempDir(), "scan.bin")
			_, errOut, code := depotCLIResult(env, "download", "c1/scan.bin", dst, "-q")
			if code != 5 {
				t.Fatalf("download cut on every connection: exit %d, want 5 (unavailable): %s", code, errOut)
			}
			if _, err := os.Stat(dst); err == nil {
				t.Fatal("an incomplete download was put in place")
			}
			// The partial file is named for the version it holds.
			partName := dst + "." + currentVersionOf(t, c, "c1/scan.bin") + ".part"
			part, err := os.ReadFile(partName)
			if err != nil || len(part) == 0 || len(part) >= len(data) || !bytes.Equal(part, data[:len(part)]) {
				t.Fatalf("partial file: %d of %d bytes, a prefix: %v (%v)", len(part), len(data), err == nil && bytes.Equal(part, data[:len(part)]), err)
			}
			if proxy.downCuts.Load() < 6 {
				t.Fatalf("only %d cuts: the client did not retry", proxy.downCuts.Load())
			}

			armed.Store(false)
			proxy.resetAll()
			out := depotCLI(t, env, "download", "c1/scan.bin", dst, "-q")
			got, err := os.ReadFile(dst)
			if err != nil || !bytes.Equal(got, data) || !bytes.Contains([]byte(out), []byte(sum)) {
				t.Fatalf("resumed download: %d bytes, equal %v, output %q", len(got), bytes.Equal(got, data), out)
			}
			if _, err := os.Stat(partName); err == nil {
				t.Fatal("the partial file is left behind")
			}

			// The resuming request asked for the rest of the partial file.
			db, err := servicedb.Open(context.Background(), c.dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			evs, err := db.Events(context.Background(), servicedb.Filter{Action: depot.ActionDownload})
			if err != nil || len(evs) == 0 {
				t.Fatalf("download records: %v", err)
			}
			last := evs[len(evs)-1]
			want := strconv.Itoa(len(part)) + "-" + strconv.Itoa(len(data)-1)
			if last.Metadata["range"] != want || last.Outcome != depot.OutcomeSuccess {
				t.Fatalf("last download record: range %q outcome %s, want range %s", last.Metadata["range"], last.Outcome, want)
			}
		})
	}
}

// Command upload is the two-tier upload benchmark: in one run it starts the
// real depot binary as a services and a web process (SQLite, local storage),
// then uploads the same generated stream (a) straight to the services tier's
// internal API and (b) through the web tier, and prints MB/s of each, their
// ratio and the web process's peak RSS.
//
//	go run ./bench/upload -size 2GiB -runs 3
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"depot/bench/internal/benchkit"
	"depot/internal/httpauth"
)

func main() {
	size := flag.String("size", "2GiB", "bytes per upload (suffix MiB or GiB)")
	runs := flag.Int("runs", 3, "runs of each measurement; the median is reported")
	chunk := flag.String("chunk", "8388608", "DEPOT_CHUNK_SIZE of the web tier")
	flag.Parse()
	n, err := benchkit.ParseSize(*size)
	if err != nil {
		fail(err)
	}
	if err := run(n, *runs, *chunk); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

var key = httpauth.NewKey()

func run(size int64, runs int, chunk string) error {
	dir, err := os.MkdirTemp("", "depot-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := benchkit.Build(dir)
	if err != nil {
		return err
	}
	db := "sqlite://" + filepath.Join(dir, "depot.db")
	token, err := benchkit.Account(bin, db)
	if err != nil {
		return err
	}
	svc, svcAddr, err := benchkit.Serve(bin, "DEPOT_ROLE=services", "DEPOT_INTERNAL_ADDR=127.0.0.1:0", "DEPOT_INTERNAL_KEYS="+key,
		"DEPOT_STORAGE_URL=file://"+filepath.Join(dir, "files"), "DEPOT_DATABASE_URL="+db)
	if err != nil {
		return err
	}
	defer benchkit.Stop(svc)
	web, webAddr, err := benchkit.Serve(bin, "DEPOT_ROLE=web", "DEPOT_ADDR=127.0.0.1:0", "DEPOT_SERVICES_URL=http://"+svcAddr,
		"DEPOT_INTERNAL_KEY="+key, "DEPOT_CHUNK_SIZE="+chunk)
	if err != nil {
		return err
	}
	defer benchkit.Stop(web)

	direct := func(i int) (*http.Request, error) {
		req, err := http.NewRequest("PUT", "http://"+svcAddr+"/internal/v1/object", benchkit.Payload(size, i, 0))
		if err != nil {
			return nil, err
		}
		req.ContentLength = size
		req.Header.Set("Depot-User-Token", token)
		req.Header.Set("Depot-Key", fmt.Sprintf("b/direct-%d.bin", i))
		httpauth.Sign(req, []byte(key), time.Now())
		return req, nil
	}
	viaWeb := func(i int) (*http.Request, error) {
		req, err := http.NewRequest("PUT", fmt.Sprintf("http://%s/api/v1/files/b/web-%d.bin", webAddr, i), benchkit.Payload(size, i, 0))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		return req, nil
	}
	var a, b []float64
	for i := range runs { // interleave so that both see the same machine state
		ra, err := timeUpload(direct, size, i)
		if err != nil {
			return fmt.Errorf("direct: %w", err)
		}
		rb, err := timeUpload(viaWeb, size, i)
		if err != nil {
			return fmt.Errorf("web: %w", err)
		}
		a, b = append(a, ra), append(b, rb)
		fmt.Printf("run %d: direct %.0f MiB/s, through web %.0f MiB/s\n", i+1, ra, rb)
	}
	ma, mb := benchkit.Median(a), benchkit.Median(b)
	fmt.Printf("\nsize %d MiB, %d runs, chunk %s bytes (medians)\n", size>>20, runs, chunk)
	fmt.Printf("(a) PUT straight to services : %7.0f MiB/s\n", ma)
	fmt.Printf("(b) PUT through web          : %7.0f MiB/s\n", mb)
	fmt.Printf("ratio (b)/(a)                : %7.2f\n", mb/ma)
	fmt.Printf("web peak RSS (VmHWM)         : %7.1f MiB\n", float64(benchkit.VmHWM(web.Process.Pid))/1024)
	fmt.Printf("services peak RSS (VmHWM)    : %7.1f MiB\n", float64(benchkit.VmHWM(svc.Process.Pid))/1024)
	return nil
}

func timeUpload(mk func(int) (*http.Request, error), size int64, i int) (float64, error) {
	req, err := mk(i)
	if err != nil {
		return 0, err
	}
	req.ContentLength = size
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return float64(size) / (1 << 20) / time.Since(t0).Seconds(), nil
}

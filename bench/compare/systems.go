package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"depot/bench/internal/benchkit"
	"depot/internal/httpauth"
	"depot/scan/clamdtest"
	"depot/storage/sealed"
)

// scenario is one payload: streams concurrent uploads of size bytes, or
// (files > 0) many small files from workers concurrent clients.
type scenario struct {
	name    string
	streams int
	size    int64
	files   int
	workers int
	limit   time.Duration
}

func (s scenario) small() bool { return s.files > 0 }

// sample is one system's result in one run of one scenario.
type sample struct {
	mibps    float64 // bulk: aggregate MiB/s; small: files/s
	p50, p99 float64 // small: latency in ms
	cpu, rss []kv    // per process group: CPU s/GiB (bulk) or ms per 1000 files (small); peak RSS MiB
}

type kv struct {
	k string
	v float64
}

// system is one row of the tables. measure returns one sample per row name it
// produces (tusd produces two: without and with fsync).
type system struct {
	rows    []string
	measure func(b *bench, sc scenario, run int) ([]sample, error)
}

type bench struct {
	root, work string // repository root; scratch directory (the data dir)
	depotBin   string
	template   string // directory with a prepared depot.db (user, cohort, token)
	token      string
	nginx      string
	tusd       string
	depotEnv   []string // extra DEPOT_* settings for both tiers (-depot-env)
}

var internalKey = httpauth.NewKey()

// observe runs work while measuring the groups' CPU time and peak RSS, and
// the CPU time of this process (the client) as the last CPU entry, so that
// the sum of a row is all the CPU charged to the processes that served it.
func observe(groups []group, work func() (time.Duration, int64, error)) (time.Duration, int64, []kv, []kv, error) {
	for _, g := range groups {
		resetHWM(g)
	}
	before := make([]float64, len(groups))
	for i, g := range groups {
		before[i] = groupCPU(g)
	}
	client := selfCPU()
	wall, moved, err := work()
	client = selfCPU() - client
	var cpu, rss []kv
	for i, g := range groups {
		cpu = append(cpu, kv{g.name, groupCPU(g) - before[i]})
		rss = append(rss, kv{g.name, groupHWM(g)})
	}
	cpu = append(cpu, kv{"client", client})
	return wall, moved, cpu, rss, err
}

// finish turns raw measurements into a sample.
func finish(sc scenario, wall time.Duration, moved int64, n int, lat []time.Duration, cpu, rss []kv) sample {
	s := sample{rss: rss}
	if sc.small() {
		s.mibps = float64(n) / wall.Seconds()
		s.p50 = float64(percentile(lat, 0.50).Microseconds()) / 1000
		s.p99 = float64(percentile(lat, 0.99).Microseconds()) / 1000
		for _, c := range cpu {
			s.cpu = append(s.cpu, kv{c.k, c.v * 1000 / float64(n) * 1000})
		}
		return s
	}
	gib := float64(moved) / (1 << 30)
	s.mibps = float64(moved) / (1 << 20) / wall.Seconds()
	for _, c := range cpu {
		s.cpu = append(s.cpu, kv{c.k, c.v / gib})
	}
	return s
}

// httpWork is the client side of one scenario against one HTTP system: bulk
// streams or small files, each upload done by up (on its own connection).
func httpWork(sc scenario, addr string, up func(c *conn, i int, size int64) error) func() (time.Duration, int64, int, []time.Duration, error) {
	return func() (time.Duration, int64, int, []time.Duration, error) {
		if sc.small() {
			n, wall, lat, err := small(sc.files, sc.workers, sc.limit, func(c *conn, i int) error { return up(c, i, sc.size) }, addr)
			return wall, int64(n) * sc.size, n, lat, err
		}
		wall, err := bulk(sc.streams, func(i int) error {
			c := newConn(addr)
			defer c.close()
			return up(c, i, sc.size)
		})
		return wall, int64(sc.streams) * sc.size, sc.streams, nil, err
	}
}

// measureHTTP wraps httpWork in observe and finish.
func measureHTTP(sc scenario, groups []group, work func() (time.Duration, int64, int, []time.Duration, error)) (sample, error) {
	var n int
	var lat []time.Duration
	wall, moved, cpu, rss, err := observe(groups, func() (time.Duration, int64, error) {
		w, m, k, l, err := work()
		n, lat = k, l
		return w, m, err
	})
	if err != nil {
		return sample{}, err
	}
	return finish(sc, wall, moved, n, lat, cpu, rss), nil
}

func scratch(b *bench, name string) (string, error) {
	return os.MkdirTemp(b.work, name+"-")
}

// ---- physical baselines (in-process) ----

func tcpCopy(b *bench, sc scenario, run int) ([]sample, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 1<<20)
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				c.Write([]byte{1}) // acknowledge the end of the stream
				c.Close()
			}()
		}
	}()
	wall, err := bulk(sc.streams, func(i int) error {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		for left := sc.size; left > 0; {
			p := block
			if int64(len(p)) > left {
				p = p[:left]
			}
			k, err := c.Write(p)
			if err != nil {
				return err
			}
			left -= int64(k)
		}
		c.(*net.TCPConn).CloseWrite()
		_, err = io.ReadFull(c, make([]byte, 1))
		return err
	})
	if err != nil {
		return nil, err
	}
	return []sample{finish(sc, wall, int64(sc.streams)*sc.size, sc.streams, nil, nil, nil)}, nil
}

func diskWrite(b *bench, sc scenario, run int) ([]sample, error) {
	dir, err := scratch(b, "disk")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	wall, err := bulk(sc.streams, func(i int) error {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%d", i)))
		if err != nil {
			return err
		}
		for left := sc.size; left > 0; {
			p := block
			if int64(len(p)) > left {
				p = p[:left]
			}
			k, err := f.Write(p)
			if err != nil {
				f.Close()
				return err
			}
			left -= int64(k)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	if err != nil {
		return nil, err
	}
	return []sample{finish(sc, wall, int64(sc.streams)*sc.size, sc.streams, nil, nil, nil)}, nil
}

// ---- nginx → Go sink ----

const nginxConf = `user root;
daemon off;
master_process on;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream sink {
        server %[2]s;
        keepalive 128;
    }
    server {
        listen 127.0.0.1:%[3]d;
        client_max_body_size 0;
        client_body_buffer_size 1m;
        keepalive_requests 100000;
        location / {
            proxy_pass http://sink;
            proxy_request_buffering off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`

// nginxSink measures nginx in front of the Go sink, which hashes each body
// with SHA-256 when hashing is set.
func nginxSink(hashing bool) func(b *bench, sc scenario, run int) ([]sample, error) {
	return func(b *bench, sc scenario, run int) ([]sample, error) {
		return measureNginx(b, sc, run, hashing)
	}
}

func measureNginx(b *bench, sc scenario, run int, hashing bool) ([]sample, error) {
	dir, err := scratch(b, "nginx")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	files := filepath.Join(dir, "files")
	if err := os.Mkdir(files, 0o755); err != nil {
		return nil, err
	}
	sink, sinkAddr, err := startSink(files, hashing)
	if err != nil {
		return nil, err
	}
	defer stop(sink, os.Interrupt)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, sinkAddr, port), 0o644); err != nil {
		return nil, err
	}
	ng := exec.Command(b.nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf)
	ng.Stdout, ng.Stderr = os.Stderr, os.Stderr
	ng.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := ng.Start(); err != nil {
		return nil, err
	}
	defer stop(ng, syscall.SIGTERM)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitTCP(addr, 15*time.Second); err != nil {
		return nil, err
	}
	time.Sleep(100 * time.Millisecond) // let the workers start
	s, err := measureHTTP(sc, []group{withChildren("nginx", ng.Process.Pid), single("sink", sink)},
		httpWork(sc, addr, func(c *conn, i int, size int64) error {
			_, err := c.call("PUT", fmt.Sprintf("/r%d/f%d", run, i), nil, size)
			return err
		}))
	if err == nil {
		// the proof that nginx buffered nothing: its body temp dir is empty
		if ents, _ := os.ReadDir(filepath.Join(dir, "client_body")); len(ents) > 0 {
			fmt.Fprintln(os.Stderr, "warning: nginx wrote request bodies to client_body_temp")
		}
	}
	return []sample{s}, err
}

// ---- tusd (filestore), one hop ----

func tusd(b *bench, sc scenario, run int) ([]sample, error) {
	dir, err := scratch(b, "tusd")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.tusd, "-host", "127.0.0.1", "-port", fmt.Sprint(port), "-upload-dir", dir, "-base-path", "/files/")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer stop(cmd, os.Interrupt)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitTCP(addr, 15*time.Second); err != nil {
		return nil, err
	}
	ids := make([]string, max(sc.streams, sc.files))
	up := func(c *conn, i int, size int64) error {
		id, err := tusUpload(c, "/files/", size, nil)
		ids[i] = id
		return err
	}
	g := []group{single("tusd", cmd)}
	work := httpWork(sc, addr, up)
	var n int
	var lat []time.Duration
	var syncTime time.Duration
	wall, moved, cpu, rss, err := observe(g, func() (time.Duration, int64, error) {
		w, m, k, l, err := work()
		n, lat = k, l
		if err != nil {
			return w, m, err
		}
		// tusd does not fsync; make the data durable the way a caller would.
		t0 := time.Now()
		for _, id := range ids {
			if id == "" {
				continue
			}
			f, err := os.OpenFile(filepath.Join(dir, id), os.O_RDWR, 0)
			if err != nil {
				return w, m, err
			}
			err = f.Sync()
			f.Close()
			if err != nil {
				return w, m, err
			}
		}
		syncTime = time.Since(t0)
		return w, m, nil
	})
	if err != nil {
		return nil, err
	}
	noSync := finish(sc, wall, moved, n, lat, cpu, rss)
	// The fsync's CPU is mostly kernel writeback, not attributable to a
	// process; the CPU column shows tusd's own.
	withSync := finish(sc, wall+syncTime, moved, n, lat, cpu, rss)
	return []sample{noSync, withSync}, nil
}

// tusUpload creates an upload (POST) and sends the whole body in one PATCH.
// It returns the upload's id (the last element of its Location).
func tusUpload(c *conn, base string, size int64, h http.Header) (string, error) {
	hp := http.Header{"Tus-Resumable": {"1.0.0"}, "Upload-Length": {itoa(size)}}
	for k, v := range h {
		hp[k] = v
	}
	resp, err := c.call("POST", base, hp, 0)
	if err != nil {
		return "", fmt.Errorf("tus POST: %w", err)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	hp = http.Header{"Tus-Resumable": {"1.0.0"}, "Upload-Offset": {"0"}, "Content-Type": {"application/offset+octet-stream"}}
	if a := h.Get("Authorization"); a != "" {
		hp.Set("Authorization", a)
	}
	if _, err := c.call("PATCH", loc.Path, hp, size, 204); err != nil {
		return "", fmt.Errorf("tus PATCH: %w", err)
	}
	return loc.Path[strings.LastIndexByte(loc.Path, '/')+1:], nil
}

// ---- depot ----

// startDepotPair starts fresh services (and, unless servicesOnly, web)
// processes on a copy of the prepared database and an empty storage dir.
func (b *bench) startDepot(sc scenario, servicesOnly bool, svcExtra ...string) (svc, web *exec.Cmd, svcAddr, webAddr string, cleanup func(), err error) {
	dir, err := scratch(b, "depot")
	if err != nil {
		return
	}
	var cmds []*exec.Cmd
	cleanup = func() {
		for i := len(cmds) - 1; i >= 0; i-- {
			stop(cmds[i], os.Interrupt)
		}
		os.RemoveAll(dir)
	}
	ents, err := os.ReadDir(b.template)
	if err != nil {
		return
	}
	for _, e := range ents {
		var data []byte
		if data, err = os.ReadFile(filepath.Join(b.template, e.Name())); err != nil {
			return
		}
		if err = os.WriteFile(filepath.Join(dir, e.Name()), data, 0o600); err != nil {
			return
		}
	}
	svcEnv := []string{"DEPOT_ROLE=services", "DEPOT_INTERNAL_ADDR=127.0.0.1:0",
		"DEPOT_INTERNAL_KEYS=" + internalKey, "DEPOT_STORAGE_URL=file://" + filepath.Join(dir, "files"),
		"DEPOT_DATABASE_URL=sqlite://" + filepath.Join(dir, "depot.db"), "DEPOT_MAINTENANCE=off"}
	svc, svcAddr, err = benchkit.Serve(b.depotBin, slices.Concat(svcEnv, svcExtra, b.depotEnv)...)
	if err != nil {
		return
	}
	cmds = append(cmds, svc)
	if servicesOnly {
		return
	}
	env := []string{"DEPOT_ROLE=web", "DEPOT_ADDR=127.0.0.1:0", "DEPOT_SERVICES_URL=http://" + svcAddr,
		"DEPOT_INTERNAL_KEY=" + internalKey}
	if sc.small() || sc.streams > 1 { // default limits are 8 uploads per user and 16 buffers
		env = append(env, "DEPOT_MAX_UPLOADS_PER_USER=128", "DEPOT_MAX_BUFFERS=64")
	}
	web, webAddr, err = benchkit.Serve(b.depotBin, append(env, b.depotEnv...)...)
	if err != nil {
		return
	}
	cmds = append(cmds, web)
	return
}

func depotPutWeb(b *bench, sc scenario, run int) ([]sample, error) {
	svc, web, _, webAddr, cleanup, err := b.startDepot(sc, false)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return nil, err
	}
	h := http.Header{"Authorization": {"Bearer " + b.token}}
	s, err := measureHTTP(sc, []group{single("web", web), single("services", svc)},
		httpWork(sc, webAddr, func(c *conn, i int, size int64) error {
			_, err := c.call("PUT", fmt.Sprintf("/api/v1/files/b/r%d/put-%d.bin", run, i), h, size, 201)
			return err
		}))
	return []sample{s}, err
}

func depotTusWeb(b *bench, sc scenario, run int) ([]sample, error) {
	svc, web, _, webAddr, cleanup, err := b.startDepot(sc, false)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return nil, err
	}
	enc := base64.StdEncoding.EncodeToString
	s, err := measureHTTP(sc, []group{single("web", web), single("services", svc)},
		httpWork(sc, webAddr, func(c *conn, i int, size int64) error {
			h := http.Header{"Authorization": {"Bearer " + b.token},
				"Upload-Metadata": {"cohort " + enc([]byte("b")) + ",path " + enc(fmt.Appendf(nil, "r%d/tus-%d.bin", run, i)) + ",filename " + enc([]byte("x.bin"))}}
			_, err := tusUpload(c, "/api/v1/uploads/", size, h)
			return err
		}))
	return []sample{s}, err
}

func depotPutServices(b *bench, sc scenario, run int) ([]sample, error) {
	svc, _, svcAddr, _, cleanup, err := b.startDepot(sc, true)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return nil, err
	}
	s, err := measureHTTP(sc, []group{single("services", svc)},
		httpWork(sc, svcAddr, func(c *conn, i int, size int64) error {
			// a non-nil body so that Sign binds the Content-Length
			req, err := http.NewRequest("PUT", "http://"+svcAddr+"/internal/v1/object", struct{ io.Reader }{strings.NewReader("")})
			if err != nil {
				return err
			}
			req.ContentLength = size
			req.Header.Set("Depot-User-Token", b.token)
			req.Header.Set("Depot-Key", fmt.Sprintf("b/r%d/direct-%d.bin", run, i))
			httpauth.Sign(req, []byte(internalKey), time.Now())
			_, err = c.call("PUT", "/internal/v1/object", req.Header, size, 201)
			return err
		}))
	return []sample{s}, err
}

// depotPutWebScan is depotPutWeb with malware scanning on: a fresh clamd
// (scan/clamdtest: Debian's clamav-daemon on a one-signature database, so
// it measures clamd's streaming and scanning, not a large signature set)
// whose limits take the whole stream, and whose CPU and RSS are reported.
func depotPutWebScan(b *bench, sc scenario, run int) ([]sample, error) {
	d, err := clamdtest.New(clamdtest.Options{StreamMaxLength: sc.size + 1<<20})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if err := d.Run(); err != nil {
		return nil, err
	}
	svc, web, _, webAddr, cleanup, err := b.startDepot(sc, false, "DEPOT_SCAN=clamav", "DEPOT_CLAMD_ADDR="+d.Addr(),
		"DEPOT_SCAN_MAX_SIZE=0", "DEPOT_SCAN_TIMEOUT=30m", "DEPOT_SCAN_STREAMS=64")
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return nil, err
	}
	h := http.Header{"Authorization": {"Bearer " + b.token}}
	s, err := measureHTTP(sc, []group{single("web", web), single("services", svc), single("clamd", d.Cmd())},
		httpWork(sc, webAddr, func(c *conn, i int, size int64) error {
			_, err := c.call("PUT", fmt.Sprintf("/api/v1/files/b/r%d/scan-%d.bin", run, i), h, size, 201)
			return err
		}))
	return []sample{s}, err
}

// depotPutWebEnc is depotPutWeb with encryption at rest on: services gets
// a fresh key-encryption key (storage/sealed).
func depotPutWebEnc(b *bench, sc scenario, run int) ([]sample, error) {
	dir, err := scratch(b, "kek")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	kek := filepath.Join(dir, "kek.txt")
	if _, err := sealed.Generate(kek); err != nil {
		return nil, err
	}
	svc, web, _, webAddr, cleanup, err := b.startDepot(sc, false, "DEPOT_KEK_FILE="+kek)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return nil, err
	}
	h := http.Header{"Authorization": {"Bearer " + b.token}}
	s, err := measureHTTP(sc, []group{single("web", web), single("services", svc)},
		httpWork(sc, webAddr, func(c *conn, i int, size int64) error {
			_, err := c.call("PUT", fmt.Sprintf("/api/v1/files/b/r%d/enc-%d.bin", run, i), h, size, 201)
			return err
		}))
	return []sample{s}, err
}

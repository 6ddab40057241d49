// Command compare is the reference benchmark of issue 10: in one run, for the
// same payloads, it measures the physical baselines (loopback TCP copy,
// sequential disk write with fsync), nginx (proxy_request_buffering off) in
// front of a minimal Go sink (and of one that also computes SHA-256, as
// depot does), tusd v2.9.1 (filestore, one hop, with and without an fsync
// of the result) and depot (PUT through web → services → disk, tus through
// web, PUT straight to services), and reports MiB/s, the ratio to nginx,
// CPU seconds per GiB of every process and of the client, and peak RSS.
//
//	scripts/install-bench-tools.sh       # nginx (apt) and tusd (.cache/bin)
//	go run ./bench/compare               # 1×2 GiB, 8×256 MiB, 32×256 MiB, 4 KiB×64 clients; 3 runs
//	go run ./bench/compare -quick        # 1×256 MiB, 4×64 MiB, 1000 small files; 1 run
//
// Every system gets fresh processes for every measurement (so VmHWM is the
// peak of that measurement alone, and CPU is read from /proc/<pid>/stat
// before and after). Within a run the systems are interleaved, in an order
// rotated per run, so that they see the same machine state. Results are the
// medians over the runs; the table is printed and written, with the command
// and machine facts, into docs/performance.md (section "Reference comparison
// (issue 10)") and drawn into docs/performance-chart.png.
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"depot/bench/internal/benchkit"
)

func main() {
	if dir := os.Getenv(sinkEnv); dir != "" {
		sinkMain(dir, os.Getenv(sinkHashEnv) != "")
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

type options struct {
	size           int64
	runs           int
	quick          bool
	concurrent     []int
	concSize       int64
	files, workers int
	fileSize       int64
	limit          time.Duration
	only           map[string]bool
	write          bool
	docs, chart    string
	dir            string
	nginx, tusd    string
	depotEnv       []string
}

var allSystems = []struct {
	key string
	sys system
}{
	{"tcp", system{[]string{"loopback TCP copy (1 MiB writes)"}, tcpCopy}},
	{"disk", system{[]string{"disk write + fsync (1 MiB writes)"}, diskWrite}},
	{"nginx", system{[]string{nginxRow}, nginxSink(false)}},
	{"nginx-sha256", system{[]string{"nginx → Go sink + SHA-256 → disk + fsync"}, nginxSink(true)}},
	{"tusd", system{[]string{"tusd filestore (no fsync)", "tusd filestore + fsync"}, tusd}},
	{"depot-web", system{[]string{"depot PUT web → services → disk"}, depotPutWeb}},
	{"depot-tus", system{[]string{"depot tus (POST+PATCH) via web"}, depotTusWeb}},
	{"depot-services", system{[]string{"depot PUT straight to services"}, depotPutServices}},
	{"depot-web-scan", system{[]string{"depot PUT web → services → disk, scanned by clamd"}, depotPutWebScan}},
	{"depot-web-enc", system{[]string{"depot PUT web → services → disk, encrypted at rest (DEPOT_KEK_FILE)"}, depotPutWebEnc}},
}

const nginxRow = "nginx → Go sink → disk + fsync"

func run() error {
	var o options
	size := flag.String("size", "2GiB", "size of the single stream")
	concSize := flag.String("conc-size", "256MiB", "size of each concurrent stream")
	conc := flag.String("streams", "8,32", "concurrent stream counts")
	flag.IntVar(&o.runs, "runs", 3, "runs of every measurement; medians are reported")
	flag.BoolVar(&o.quick, "quick", false, "trial mode: 1×256MiB, 4×64MiB, 1000 small files, 1 run (unless -runs is given)")
	flag.IntVar(&o.files, "files", 5000, "small files per small-file measurement")
	flag.IntVar(&o.workers, "clients", 64, "concurrent clients of the small-file measurement")
	fileSize := flag.String("file-size", "4KiB", "size of a small file")
	flag.DurationVar(&o.limit, "files-limit", 20*time.Second, "time bound of a small-file measurement")
	only := flag.String("systems", "", "comma-separated subset of: tcp,disk,nginx,nginx-sha256,tusd,depot-web,depot-tus,depot-services,depot-web-scan,depot-web-enc (default all)")
	flag.BoolVar(&o.write, "write", true, "write the results into -docs and -chart")
	flag.StringVar(&o.docs, "docs", "docs/performance.md", "markdown file that gets the results section")
	flag.StringVar(&o.chart, "chart", "docs/performance-chart.png", "bar chart PNG")
	flag.StringVar(&o.dir, "dir", "", "scratch/data directory (default: a new directory in $TMPDIR)")
	flag.StringVar(&o.nginx, "nginx", "", "nginx binary (default: PATH, /usr/sbin/nginx)")
	flag.StringVar(&o.tusd, "tusd", ".cache/bin/tusd", "tusd binary")
	depotBin := flag.String("depot-bin", "", "depot binary to measure (default: build ./cmd/depot), e.g. to compare two builds")
	flag.Func("depot-env", "extra KEY=VALUE for both depot processes (repeatable), e.g. DEPOT_CHUNK_SIZE=33554432 or GOMAXPROCS=1", func(v string) error {
		if !(strings.HasPrefix(v, "DEPOT_") || strings.HasPrefix(v, "GO")) || !strings.Contains(v, "=") {
			return fmt.Errorf("want DEPOT_NAME=value or GONAME=value")
		}
		o.depotEnv = append(o.depotEnv, v)
		return nil
	})
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		for name, v := range map[string]string{"size": "256MiB", "conc-size": "64MiB", "streams": "4", "files": "1000", "runs": "1"} {
			if !set[name] {
				_ = flag.Set(name, v)
			}
		}
	}
	var err error
	if o.size, err = benchkit.ParseSize(*size); err != nil {
		return err
	}
	if o.concSize, err = benchkit.ParseSize(*concSize); err != nil {
		return err
	}
	if o.fileSize, err = benchkit.ParseSize(*fileSize); err != nil {
		return err
	}
	for _, f := range strings.Split(*conc, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("bad -streams %q", *conc)
		}
		o.concurrent = append(o.concurrent, n)
	}
	if *only != "" {
		o.only = map[string]bool{}
		for _, k := range strings.Split(*only, ",") {
			o.only[strings.TrimSpace(k)] = true
		}
	}
	if _, err := os.Stat("go.mod"); err != nil {
		return fmt.Errorf("run from the repository root (go run ./bench/compare)")
	}
	root, _ := os.Getwd()

	b := &bench{root: root, depotEnv: o.depotEnv, depotBin: *depotBin}
	var skipped []string
	var systems []system
	for _, s := range allSystems {
		if o.only != nil && !o.only[s.key] {
			continue
		}
		switch s.key {
		case "nginx", "nginx-sha256":
			if b.nginx = findNginx(o.nginx); b.nginx == "" {
				skipped = append(skipped, "nginx (not installed: run scripts/install-bench-tools.sh)")
				continue
			}
		case "tusd":
			if _, err := os.Stat(o.tusd); err != nil {
				skipped = append(skipped, "tusd (not found at "+o.tusd+": run scripts/install-bench-tools.sh)")
				continue
			}
			b.tusd, _ = filepath.Abs(o.tusd)
		}
		systems = append(systems, s.sys)
	}
	for _, s := range skipped {
		fmt.Fprintln(os.Stderr, "compare: skipping", s)
	}

	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("", "depot-compare-"); err != nil {
			return err
		}
		defer os.RemoveAll(o.dir)
	} else if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	b.work = o.dir
	machineFactsCache = machineFacts(b)
	block = make([]byte, 1<<20)
	rand.Read(block)
	if err := b.prepareDepot(); err != nil {
		return err
	}

	scenarios := []scenario{{name: fmt.Sprintf("1 × %s stream", human(o.size)), streams: 1, size: o.size}}
	for _, n := range o.concurrent {
		scenarios = append(scenarios, scenario{name: fmt.Sprintf("%d × %s concurrent streams (aggregate)", n, human(o.concSize)), streams: n, size: o.concSize})
	}
	if o.files > 0 {
		scenarios = append(scenarios, scenario{name: fmt.Sprintf("%s files, %d concurrent clients, %d files or %s", human(o.fileSize), o.workers, o.files, o.limit),
			files: o.files, workers: o.workers, size: o.fileSize, limit: o.limit})
	}

	// Warm-up (unmeasured): on this VM freshly freed memory is slow to touch
	// again, so the first large write after a pause runs at a third of the
	// speed. Touch as much page cache as the largest scenario once.
	warm := o.size
	for _, n := range o.concurrent {
		warm = max(warm, int64(n)*o.concSize)
	}
	fmt.Fprintf(os.Stderr, "warm-up: writing %s\n", human(warm))
	if _, err := diskWrite(b, scenario{streams: 1, size: warm}, -1); err != nil {
		return err
	}

	started := time.Now()
	results := make([]map[string][]sample, len(scenarios))
	for si, sc := range scenarios {
		results[si] = map[string][]sample{}
		if sc.small() {
			fmt.Printf("\n== %s\n", sc.name)
		} else {
			fmt.Printf("\n== %s\n", sc.name)
		}
		for r := range o.runs {
			for k := range systems {
				sys := systems[(k+r)%len(systems)] // rotate the order per run
				if sc.small() && (sys.rows[0] == allSystems[0].sys.rows[0] || sys.rows[0] == allSystems[1].sys.rows[0]) {
					continue // the physical baselines are bulk-only
				}
				ss, err := sys.measure(b, sc, r)
				if err != nil {
					return fmt.Errorf("%s, %s, run %d: %w", sys.rows[0], sc.name, r+1, err)
				}
				for i, s := range ss {
					name := sys.rows[i]
					results[si][name] = append(results[si][name], s)
					fmt.Printf("run %d  %-36s %s\n", r+1, name, brief(sc, s))
				}
			}
		}
	}
	elapsed := time.Since(started)

	var rowOrder []string
	for _, s := range systems {
		rowOrder = append(rowOrder, s.rows...)
	}
	tables := make([]table, len(scenarios))
	for si, sc := range scenarios {
		tables[si] = makeTable(sc, rowOrder, results[si])
	}
	cmdline := "go run ./bench/compare " + strings.Join(os.Args[1:], " ")
	md := renderMarkdown(tables, o, cmdline, elapsed, skipped)
	fmt.Println()
	fmt.Println(md)
	if !o.write {
		return nil
	}
	if err := writeSection(o.docs, md); err != nil {
		return err
	}
	if err := drawChart(o.chart, tables, cmdline); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %s\n", o.docs, o.chart)
	return nil
}

func findNginx(flagPath string) string {
	if flagPath != "" {
		return flagPath
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	return ""
}

// prepareDepot builds the depot binary and a database with a user "bench"
// that may upload to cohort "b", and its token. Every depot measurement
// starts from a copy of it.
func (b *bench) prepareDepot() error {
	bin := b.depotBin
	if bin == "" {
		fmt.Fprintln(os.Stderr, "building ./cmd/depot")
		var err error
		if bin, err = benchkit.Build(b.work); err != nil {
			return err
		}
		b.depotBin = bin
	}
	b.template = filepath.Join(b.work, "template")
	if err := os.Mkdir(b.template, 0o755); err != nil {
		return err
	}
	var err error
	b.token, err = benchkit.Account(bin, "sqlite://"+filepath.Join(b.template, "depot.db"))
	return err
}

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func brief(sc scenario, s sample) string {
	var b strings.Builder
	if sc.small() {
		fmt.Fprintf(&b, "%7.0f files/s  p50 %6.1f ms  p99 %6.1f ms", s.mibps, s.p50, s.p99)
	} else {
		fmt.Fprintf(&b, "%7.0f MiB/s", s.mibps)
	}
	if len(s.cpu) > 0 {
		b.WriteString("  cpu " + kvs(s.cpu, "%.2f"))
		b.WriteString("  rss " + kvs(s.rss, "%.0f"))
	}
	return b.String()
}

func kvs(v []kv, format string) string {
	var parts []string
	for _, x := range v {
		parts = append(parts, x.k+" "+fmt.Sprintf(format, x.v))
	}
	return strings.Join(parts, ", ")
}

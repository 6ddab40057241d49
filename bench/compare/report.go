package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"depot/bench/internal/benchkit"
)

type row struct {
	name          string
	val, p50, p99 float64 // medians
	ratio         float64 // val / nginx's val (0: no nginx)
	cpu, rss      []kv    // medians per process group
	runs          int
}

type table struct {
	sc   scenario
	rows []row
}

func medianKV(samples []sample, get func(sample) []kv) []kv {
	var keys []string
	vals := map[string][]float64{}
	for _, s := range samples {
		for _, x := range get(s) {
			if _, ok := vals[x.k]; !ok {
				keys = append(keys, x.k)
			}
			vals[x.k] = append(vals[x.k], x.v)
		}
	}
	var out []kv
	for _, k := range keys {
		out = append(out, kv{k, benchkit.Median(vals[k])})
	}
	return out
}

func makeTable(sc scenario, order []string, res map[string][]sample) table {
	t := table{sc: sc}
	for _, name := range order {
		ss := res[name]
		if len(ss) == 0 {
			continue
		}
		var v, p50, p99 []float64
		for _, s := range ss {
			v, p50, p99 = append(v, s.mibps), append(p50, s.p50), append(p99, s.p99)
		}
		t.rows = append(t.rows, row{name: name, val: benchkit.Median(v), p50: benchkit.Median(p50), p99: benchkit.Median(p99),
			cpu: medianKV(ss, func(s sample) []kv { return s.cpu }), rss: medianKV(ss, func(s sample) []kv { return s.rss }), runs: len(ss)})
	}
	var ng float64
	for _, r := range t.rows {
		if r.name == nginxRow {
			ng = r.val
		}
	}
	if ng > 0 {
		for i := range t.rows {
			t.rows[i].ratio = t.rows[i].val / ng
		}
	}
	return t
}

func cell(v []kv, format string, sum bool) string {
	if len(v) == 0 {
		return "—"
	}
	var parts []string
	var total float64
	for _, x := range v {
		parts = append(parts, x.k+" "+fmt.Sprintf(format, x.v))
		total += x.v
	}
	s := strings.Join(parts, " · ")
	if sum && len(v) > 1 {
		s += " (Σ " + fmt.Sprintf(format, total) + ")"
	}
	return s
}

func ratio(r row) string {
	if r.ratio == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", r.ratio)
}

func (t table) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#### %s\n\n", t.sc.name)
	if t.sc.small() {
		b.WriteString("| system | files/s | × nginx | p50 ms | p99 ms | CPU ms per 1000 files | peak RSS MiB |\n|---|--:|--:|--:|--:|---|---|\n")
		for _, r := range t.rows {
			fmt.Fprintf(&b, "| %s | %.0f | %s | %.1f | %.1f | %s | %s |\n", r.name, r.val, ratio(r), r.p50, r.p99, cell(r.cpu, "%.0f", true), cell(r.rss, "%.0f", false))
		}
	} else {
		b.WriteString("| system | MiB/s | × nginx | CPU s/GiB | peak RSS MiB |\n|---|--:|--:|---|---|\n")
		for _, r := range t.rows {
			fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s |\n", r.name, r.val, ratio(r), cell(r.cpu, "%.2f", true), cell(r.rss, "%.0f", false))
		}
	}
	return b.String()
}

func sh(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "(" + name + ": " + err.Error() + ")"
	}
	return strings.TrimRight(string(out), " \n")
}

func machineFacts(b *bench) string {
	var lines []string
	lines = append(lines, "$ nproc", sh("nproc"))
	var cpu []string
	for _, l := range strings.Split(sh("lscpu"), "\n") {
		for _, k := range []string{"Architecture", "Model name", "CPU(s):", "Thread(s) per core", "Core(s) per socket", "Hypervisor vendor", "Flags"} {
			if strings.HasPrefix(l, k) {
				if k == "Flags" { // only the ones that matter here
					var keep []string
					for _, f := range strings.Fields(l)[1:] {
						if f == "sha_ni" || f == "avx2" || f == "pti" || f == "aes" {
							keep = append(keep, f)
						}
					}
					l = "Flags (relevant):  " + strings.Join(keep, " ")
				}
				cpu = append(cpu, l)
			}
		}
	}
	lines = append(lines, "$ lscpu (excerpt)", strings.Join(cpu, "\n"), "$ free -m", sh("free", "-m"))
	lines = append(lines, "$ versions", runtime.Version()+", "+sh(b.nginxOr("nginx"), "-v"))
	if b.tusd != "" {
		v := "(unknown version)"
		for _, l := range strings.Split(sh("go", "version", "-m", b.tusd), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/tus/tusd/v2" {
				v = f[2]
			}
		}
		lines[len(lines)-1] += ", tusd " + v
	}
	return strings.Join(lines, "\n")
}

func (b *bench) nginxOr(s string) string {
	if b.nginx != "" {
		return b.nginx
	}
	return s
}

const sectionHeading = "## Reference comparison (issue 10)"

func renderMarkdown(tables []table, o options, cmdline string, elapsed time.Duration, skipped []string) string {
	var b strings.Builder
	mode := ""
	if o.quick {
		mode = " (**-quick trial mode**: small payloads, not the reference figures)"
	}
	fmt.Fprintf(&b, "%s\n\n", sectionHeading)
	fmt.Fprintf(&b, "Generated %s by\n\n    %s\n\nmedians of %d run(s)%s; the benchmark took %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cmdline, o.runs, mode, elapsed.Round(time.Second))
	b.WriteString(`How it is measured (bench/compare/main.go):

- Client: a Go HTTP/1.1 client in the benchmark process that sends one
  pre-generated 1 MiB random block repeatedly in 1 MiB writes, with
  Content-Length, keep-alive (net/http's 32 KiB body copy would make the client
  the bottleneck on this VM).
- Physical baselines run in-process: loopback TCP (client → server reading into
  a 1 MiB buffer and discarding), and a sequential write of the same bytes with
  1 MiB writes and fsync into the data directory.
- nginx (Debian) runs as root from a generated config in a temp dir
  (` + "`proxy_request_buffering off; proxy_http_version 1.1; client_max_body_size 0; client_body_buffer_size 1m;`" + `
  upstream keepalive, ` + "`worker_processes auto`" + `) in front of a Go sink process that
  copies each body to a file with a 1 MiB buffer, fsyncs and renames (no hashing).
  The "+ SHA-256" row is the same sink also hashing each body as it copies it
  (` + "`io.MultiWriter(file, sha256)`" + `): the pass-through edge doing the hashing
  that depot does to verify every byte.
- tusd v2.9.1 (filestore, no hooks) gets one POST and one PATCH of the whole
  body per upload. "+ fsync" adds the time to fsync every uploaded file after
  the last PATCH (tusd itself never fsyncs); for small files that is one fsync
  pass at the end, so p50/p99 are the same as without it.
- depot: real ` + "`depot serve`" + ` processes (SQLite, local storage, maintenance off),
  SHA-256, fsync, atomic rename and audit on. PUT through web, tus (POST + one
  PATCH) through web, and a signed PUT straight to the services tier's internal
  API. Concurrent and small-file runs use DEPOT_MAX_UPLOADS_PER_USER=128 and
  DEPOT_MAX_BUFFERS=64; the single stream uses the defaults.
- Every measurement starts fresh processes (and empty storage), so peak RSS is
  VmHWM of that measurement; CPU is utime+stime from /proc/<pid>/stat before and
  after, per GiB moved (per 1000 files for small files). nginx = master +
  workers; "client" is the benchmark process itself (for tusd + fsync also
  its fsync pass). Σ is all the CPU charged to the row's processes (kernel
  threads such as page-cache writeback are not), so on two cores a row
  cannot move more than 2 / Σ GiB per second. Systems are interleaved
  within a run in an order rotated per run.
- × nginx is MiB/s (files/s) relative to the nginx row of the same payload.

`)
	b.WriteString("Machine:\n\n```\n" + machineFactsCache + "\n```\n\n")
	for _, t := range tables {
		b.WriteString(t.markdown())
		b.WriteString("\n")
	}
	chart := filepath.Base(o.chart)
	fmt.Fprintf(&b, "![throughput per system and payload](%s)\n", chart)
	if len(skipped) > 0 {
		b.WriteString("\nSkipped: " + strings.Join(skipped, "; ") + "\n")
	}
	return b.String()
}

var machineFactsCache string

// writeSection replaces (or appends) this benchmark's section of the file,
// leaving the other sections alone.
func writeSection(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	if text == "" {
		text = "# Performance\n\n"
	}
	section = strings.TrimRight(section, "\n") + "\n"
	start := strings.Index(text, sectionHeading+"\n")
	if start < 0 {
		if !strings.HasSuffix(text, "\n\n") {
			text = strings.TrimRight(text, "\n") + "\n\n"
		}
		text += section
	} else {
		end := len(text)
		rest := text[start+len(sectionHeading)+1:]
		if i := strings.Index(rest, "\n## "); i >= 0 {
			end = start + len(sectionHeading) + 1 + i + 1
			section += "\n"
		}
		text = text[:start] + section + text[end:]
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

// ---- chart ----

func colorOf(name string) color.RGBA {
	switch {
	case strings.HasPrefix(name, "loopback"):
		return color.RGBA{160, 160, 160, 255}
	case strings.HasPrefix(name, "disk"):
		return color.RGBA{105, 105, 105, 255}
	case strings.HasPrefix(name, "nginx"):
		return color.RGBA{46, 160, 67, 255}
	case strings.HasPrefix(name, "tusd") && strings.Contains(name, "+ fsync"):
		return color.RGBA{210, 110, 20, 255}
	case strings.HasPrefix(name, "tusd"):
		return color.RGBA{245, 175, 90, 255}
	case strings.HasPrefix(name, "depot PUT web"):
		return color.RGBA{31, 100, 200, 255}
	case strings.HasPrefix(name, "depot tus"):
		return color.RGBA{100, 160, 235, 255}
	case strings.HasPrefix(name, "depot PUT straight"):
		return color.RGBA{20, 45, 110, 255}
	}
	return color.RGBA{120, 60, 160, 255}
}

func drawChart(path string, tables []table, cmdline string) error {
	const (
		w       = 1130
		rowH    = 18
		labelW  = 330 // the longest row name, 43 characters of 7 px, and the margin
		barMaxW = 620
		margin  = 12
	)
	h := margin*2 + 34
	for _, t := range tables {
		h += 26 + len(t.rows)*rowH + 10
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	face := basicfont.Face7x13
	ascii := strings.NewReplacer("→", "->", "×", "x", "Σ", "sum")
	text := func(x, y int, s string, c color.Color) {
		s = ascii.Replace(s) // basicfont has ASCII only
		d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: face, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	black := color.Black
	y := margin + 13
	text(margin, y, "depot reference comparison (issue 10) - "+time.Now().UTC().Format("2006-01-02"), black)
	y += 16
	text(margin, y, cmdline, color.RGBA{90, 90, 90, 255})
	y += 10
	for _, t := range tables {
		y += 22
		unit := "MiB/s"
		if t.sc.small() {
			unit = "files/s"
		}
		text(margin, y, t.sc.name+"  ["+unit+"]", black)
		y += 4
		var maxv float64
		for _, r := range t.rows {
			maxv = max(maxv, r.val)
		}
		for _, r := range t.rows {
			top := y + 3
			text(margin, top+12, r.name, black)
			bw := 0
			if maxv > 0 {
				bw = int(r.val / maxv * barMaxW)
			}
			draw.Draw(img, image.Rect(labelW, top+2, labelW+max(bw, 1), top+rowH-2), image.NewUniform(colorOf(r.name)), image.Point{}, draw.Src)
			v := fmt.Sprintf("%.0f", r.val)
			if r.ratio > 0 {
				v += fmt.Sprintf("  (%.2f x nginx)", r.ratio)
			}
			text(labelW+bw+6, top+12, v, black)
			y += rowH
		}
		y += 6
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

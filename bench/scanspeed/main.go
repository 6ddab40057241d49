// Command scanspeed measures clamd alone, as depot's scan uses it: it
// starts Debian's clamd on a one-signature database (scan/clamdtest),
// sends it payloads of each kind through depot's INSTREAM client, and
// reports for each the time to send the bytes (clamd spools them), the
// time clamd took to answer after the end of the stream (the scan), and
// clamd's CPU seconds per GiB read from /proc (robust against a busy
// machine, where wall times are not).
//
//	go run ./bench/scanspeed                 # 64 MiB of random bytes, CSV text, zeros; 3 runs
//	go run ./bench/scanspeed -size 256MiB -runs 1
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"

	"depot/bench/internal/benchkit"
	"depot/scan"
	"depot/scan/clamdtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scanspeed:", err)
		os.Exit(1)
	}
}

func run() error {
	sizeFlag := flag.String("size", "64MiB", "bytes per payload")
	runs := flag.Int("runs", 3, "runs per payload; medians are reported")
	flag.Parse()
	size, err := benchkit.ParseSize(*sizeFlag)
	if err != nil {
		return err
	}
	d, err := clamdtest.New(clamdtest.Options{StreamMaxLength: size + 1<<20})
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Run(); err != nil {
		return err
	}
	c, err := scan.NewClient(d.Addr(), time.Hour)
	if err != nil {
		return err
	}
	payloads := []struct {
		name string
		data []byte
	}{{"random bytes", random(size)}, {"CSV text", csv(size)}, {"zeros", make([]byte, size)}}
	fmt.Printf("clamd %s, %s per payload, median of %d runs\n\n", version(c), fmt.Sprintf("%d MiB", size>>20), *runs)
	fmt.Println("| payload | send (spool) MiB/s | scan after the end, s | clamd CPU s/GiB |")
	fmt.Println("|---|--:|--:|--:|")
	for _, p := range payloads {
		var send, scanS, cpu []float64
		for range *runs {
			pid := d.Cmd().Process.Pid
			cpu0 := cpuSeconds(pid)
			s, err := c.Open(context.Background())
			if err != nil {
				return err
			}
			t0 := time.Now()
			if _, err := io.Copy(s, bytes.NewReader(p.data)); err != nil {
				return err
			}
			t1 := time.Now()
			if _, err := s.Finish(context.Background()); err != nil {
				return err
			}
			t2 := time.Now()
			send = append(send, float64(size)/(1<<20)/t1.Sub(t0).Seconds())
			scanS = append(scanS, t2.Sub(t1).Seconds())
			cpu = append(cpu, (cpuSeconds(pid)-cpu0)/(float64(size)/(1<<30)))
		}
		fmt.Printf("| %s | %.0f | %.2f | %.1f |\n", p.name, benchkit.Median(send), benchkit.Median(scanS), benchkit.Median(cpu))
	}
	return nil
}

func version(c *scan.Client) string {
	v, err := c.Version(context.Background())
	if err != nil {
		return "(version unknown)"
	}
	return v
}

func random(n int64) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// csv returns n bytes of a clinical-looking table: IDs, codes, numbers
// and dates.
func csv(n int64) []byte {
	var b bytes.Buffer
	b.WriteString("row,patient,value,sex,visit\n")
	for i := 0; int64(b.Len()) < n; i++ {
		v, _ := rand.Int(rand.Reader, big.NewInt(1e6))
		fmt.Fprintf(&b, "%d,P%06d,%d.%04d,%c,2024-%02d-%02d\n", i, v.Int64(), v.Int64()%997, v.Int64()%10000,
			"MF"[v.Int64()%2], v.Int64()%12+1, v.Int64()%28+1)
	}
	return b.Bytes()[:n]
}

// cpuSeconds returns the user+system CPU time of pid from /proc.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

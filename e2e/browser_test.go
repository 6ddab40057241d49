package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// pageProxy is a TCP proxy in front of the web tier that throttles the
// client-to-server direction (so that a browser upload lasts long enough to
// be interrupted) and can be stopped (listener and every connection closed,
// as when a network drops) and started again on the same port.
type pageProxy struct {
	t      *testing.T
	target string
	addr   string
	rate   float64 // bytes per second, client to server, over all connections

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	next  time.Time // throttle: when the next byte may go
	wg    sync.WaitGroup
	up    atomic.Int64 // bytes forwarded client to server
}

func newPageProxy(t *testing.T, target string, rate float64) *pageProxy {
	t.Helper()
	p := &pageProxy{t: t, target: target, addr: "127.0.0.1:0", rate: rate, conns: map[net.Conn]struct{}{}}
	p.start()
	t.Cleanup(p.stop)
	return p
}

// start listens on p.addr (the same port again after a stop).
func (p *pageProxy) start() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port is ours, but give the kernel a moment
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.mu.Lock()
	p.ln = ln
	p.addr = ln.Addr().String()
	p.mu.Unlock()
	p.wg.Add(1)
	go p.serve(ln)
}

// stop closes the listener and every open connection, and waits.
func (p *pageProxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // reset, as a dropped network looks to the browser
		}
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *pageProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *pageProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *pageProxy) serve(ln net.Listener) {
	defer p.wg.Done()
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(in) || !p.track(out) {
			in.Close()
			out.Close()
			continue
		}
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			defer p.untrack(out)
			defer p.untrack(in)
			buf := make([]byte, 64<<10)
			for {
				n, err := in.Read(buf)
				if n > 0 {
					p.throttle(n)
					if _, werr := out.Write(buf[:n]); werr != nil {
						return
					}
					p.up.Add(int64(n))
				}
				if err != nil {
					return
				}
			}
		}()
		go func() {
			defer p.wg.Done()
			io.Copy(in, out)
			p.untrack(in)
		}()
	}
}

func (p *pageProxy) setRate(r float64) {
	p.mu.Lock()
	p.rate = r
	p.mu.Unlock()
}

// throttle sleeps so that the bytes forwarded client to server keep to p.rate.
func (p *pageProxy) throttle(n int) {
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	d := p.next.Sub(now)
	p.mu.Unlock()
	time.Sleep(d)
}

// chromiumPath returns the Chromium binary, or skips the test (fails in CI).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is required in CI for the browser test (scripts/install-chromium.sh)")
	}
	t.Skip("chromium not installed (scripts/install-chromium.sh installs it)")
	return ""
}

// removeAllRetry removes dir; Chromium's helpers may write into it for a
// moment after the browser exits.
func removeAllRetry(dir string) {
	for range 50 {
		if err := os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// browser is a headless Chromium with a fresh profile, driven by chromedp.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []string
}

// startBrowser starts Chromium for the test; it stops when the test ends.
func startBrowser(t *testing.T, chromium string) *browser {
	t.Helper()
	profile, err := os.MkdirTemp("", "depot-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeAllRetry(profile) })
	chromeTmp := filepath.Join(profile, "tmp")
	if err := os.Mkdir(chromeTmp, 0o700); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(filepath.Join(profile, "profile")),
		chromedp.Env("TMPDIR="+chromeTmp),
		chromedp.WindowSize(1200, 1000),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc(); cancel() })
	b := &browser{t: t, ctx: bctx}

	// Collect the console: a CSP violation or a script error fails the test.
	msgs := chromedp.Console(bctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, fmt.Sprintf("[%s %s] %s", m.Type, m.Source, m.Text))
			b.mu.Unlock()
		}
	}()
	return b
}

// run runs actions, failing the test (with the console) on error.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.mu.Unlock()
		page := b.state()
		b.mu.Lock()
		b.t.Fatalf("%s: %v\npage: %s\nconsole:\n%s", what, err, page, strings.Join(b.console, "\n"))
	}
}

// state describes the newest upload on the page, for failure messages.
func (b *browser) state() string {
	s, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](
		`(() => { const li = document.querySelector('#uploads li'); return li ? li.dataset.state + ' ' + li.dataset.progress + '% ' + li.innerText.replace(/\s+/g, ' ') : 'no upload'; })()`))
	return s
}

// screenshot saves a full-page PNG as a test artifact in e2e/artifacts/
// (git-ignored), with no element focused.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.activeElement && document.activeElement.blur(), true`)); err != nil {
		b.t.Fatal(err)
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	dir, err := filepath.Abs("artifacts")
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

// checkConsole fails on a Content Security Policy violation or an uncaught
// exception, and logs the console.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, line := range b.console {
		if strings.Contains(line, "Content Security Policy") || strings.Contains(line, "[exception") {
			b.t.Errorf("browser console: %s", line)
		}
	}
	b.t.Logf("browser console (%d messages):\n%s", len(b.console), strings.Join(b.console, "\n"))
}

// TestBrowserUploadResumes drives the upload page in a real
// headless Chromium: sign in with a token, pick the cohort, upload a 64 MiB
// file, cut the network in the middle (the proxy in front of the web tier
// stops: listener and connections closed), start it again on the same port,
// and see tus-js-client resume from the server's offset and finish, with the
// verified SHA-256 on the page and the exact bytes on the services tier.
// Then it reloads the page in the middle of a second upload and continues
// that upload from where it stopped by choosing the same file again.
func TestBrowserUploadResumes(t *testing.T) {
	chromium := chromiumPath(t)
	began := time.Now()
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_CHUNK_SIZE": "1048576"}})

	// The page and its files carry the strict security headers.
	resp, err := http.Get(c.web.url() + "/")
	if err != nil {
		t.Fatal(err)
	}
	index := readAll(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(string(index), "/static/app.js") {
		t.Fatalf("GET /: %d %.200s", resp.StatusCode, index)
	}
	for _, path := range []string{"/", "/static/app.js", "/static/vendor/tus.min.js"} {
		r, err := http.Get(c.web.url() + path)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, r)
		csp := r.Header.Get("Content-Security-Policy")
		if r.StatusCode != 200 || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") ||
			r.Header.Get("X-Frame-Options") != "DENY" || r.Header.Get("Referrer-Policy") != "no-referrer" ||
			r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("GET %s: status %d, headers %v", path, r.StatusCode, r.Header)
		}
	}

	// 64 MiB at 24 MiB/s: about 2.7 s of upload, long enough to cut it.
	const size = 64 << 20
	proxy := newPageProxy(t, c.web.addr, 24<<20)
	data, want := payloadBytes(77, size)
	dir := t.TempDir()
	src := filepath.Join(dir, "imaging-export.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}

	b := startBrowser(t, chromium)
	bctx, run, state := b.ctx, b.run, b.state

	base := "http://" + proxy.addr
	run("open the page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.screenshot("browser-signin.png")
	run("sign in",
		chromedp.SendKeys(chromedp.CSS("#token"), c.token),
		chromedp.Click(chromedp.CSS("#signin-btn")),
		chromedp.WaitVisible(chromedp.CSS("#cohort")),
	)
	cohort, err := chromedp.Run(bctx, chromedp.Evaluate[string](
		`(() => { const s = document.getElementById('cohort'); s.value = 'c1'; s.dispatchEvent(new Event('change')); return s.value; })()`))
	if err != nil || cohort != "c1" {
		t.Fatalf("pick cohort: %q %v", cohort, err)
	}
	run("choose the file",
		chromedp.WaitVisible(chromedp.CSS("#dropzone")),
		chromedp.SendKeys(chromedp.CSS("#folder"), "2026/scans"),
		chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{src}),
	)

	// Wait until the upload is well under way, then drop the network.
	progress, err := chromedp.Run(bctx, chromedp.Poll[float64](
		`(() => { const li = document.querySelector('#uploads li'); const p = li ? parseFloat(li.dataset.progress) : 0; return li && li.dataset.state === 'uploading' && p >= 15 && p <= 80 ? p : 0; })()`,
		chromedp.WithPollingInterval(10*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("upload never reached 15–80%%: %v (page: %s)", err, state())
	}
	// The page sends 32 MiB per PATCH; cut inside one (not at its end), so
	// that the server must keep the part of the PATCH that arrived.
	const pagePatch = 32 << 20
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		up := proxy.up.Load()
		if in := up % pagePatch; in > 6<<20 && in < 24<<20 && up < size-8<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upload did not get to the middle of a PATCH (page: %s)", state())
		}
	}
	proxy.stop()
	upBefore := proxy.up.Load()
	t.Logf("network dropped after %d bytes through the proxy (the page had shown %.1f%% a moment before)", upBefore, progress)
	time.Sleep(2 * time.Second)
	dropped := state()
	t.Logf("page while the network is down: %s", dropped)
	if !strings.HasPrefix(dropped, "retrying ") {
		t.Fatalf("the page does not show the upload reconnecting: %s", dropped)
	}
	b.screenshot("browser-reconnecting.png")
	proxy.start()

	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](
		`(() => { const li = document.querySelector('#uploads li'); return !!li && (li.dataset.state === 'done' || li.dataset.state === 'error') && !!document.querySelector('#files-body tr'); })()`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second))); err != nil {
		t.Fatalf("upload did not finish after the network came back: %v (page: %s)", err, state())
	}
	type result struct {
		State     string `json:"state"`
		Retries   string `json:"retries"`
		ResumedAt string `json:"resumedAt"`
		Sha       string `json:"sha"`
		Text      string `json:"text"`
		Listed    string `json:"listed"`
	}
	res, err := chromedp.Run(bctx, chromedp.Evaluate[result](`(() => {
		const li = document.querySelector('#uploads li');
		const sha = li.querySelector('.sha-value');
		return {state: li.dataset.state, retries: li.dataset.retries, resumedAt: li.dataset.resumedAt,
			sha: sha ? sha.textContent : '', text: li.innerText, listed: document.getElementById('files-body').innerText};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	upAfter := proxy.up.Load() - upBefore
	t.Logf("page: state %s, %s retries, resumed at byte %s; %d bytes through the proxy after the restart",
		res.State, res.Retries, res.ResumedAt, upAfter)
	if res.State != "done" {
		t.Fatalf("upload ended %s: %s", res.State, res.Text)
	}
	if res.Sha != want {
		t.Fatalf("page shows SHA-256 %q, want %s", res.Sha, want)
	}
	if !strings.Contains(res.Text, "matches your file") {
		t.Fatalf("page did not compare the SHA-256 with the local file: %s", res.Text)
	}
	var resumedAt int64
	fmt.Sscan(res.ResumedAt, &resumedAt)
	if res.Retries == "0" || resumedAt <= 0 {
		t.Fatalf("the upload did not resume from the server's offset (retries %s, resumed at %q)", res.Retries, res.ResumedAt)
	}
	if resumedAt%pagePatch == 0 {
		t.Fatalf("resumed at %d, a PATCH boundary: the bytes of the cut PATCH were not kept", resumedAt)
	}
	if !strings.Contains(res.Text, "The connection dropped once") {
		t.Fatalf("the page does not tell the user about the drop: %s", res.Text)
	}
	if upAfter >= size {
		t.Fatalf("%d bytes went through after the restart: the upload started over instead of resuming", upAfter)
	}
	if !strings.Contains(res.Listed, "2026/scans/imaging-export.bin") {
		t.Fatalf("the file list does not show the new file: %q", res.Listed)
	}

	// The bytes on the services tier.
	n, got := hashFile(t, c.storedPath("c1/2026/scans/imaging-export.bin"))
	if n != size || got != want {
		t.Fatalf("stored file: %d bytes, sha %s; want %d bytes, sha %s", n, got, size, want)
	}
	if k := len(completedRecords(t, c, "c1/2026/scans/imaging-export.bin")); k != 1 {
		t.Fatalf("%d upload.completed records, want 1", k)
	}

	// The screenshot of the finished page, kept as a test artifact.
	b.screenshot("browser-upload.png")

	// Reload the page in the middle of a second upload: the page warns
	// (beforeunload, accepted here), signs in again from sessionStorage, lists
	// the unfinished upload, and choosing the same file continues it.
	dialogs := chromedp.Events(bctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	const size2 = 16 << 20
	data2, want2 := payloadBytes(78, size2)
	src2 := filepath.Join(dir, "followup.bin")
	if err := os.WriteFile(src2, data2, 0o600); err != nil {
		t.Fatal(err)
	}
	proxy.setRate(4 << 20)
	up0 := proxy.up.Load()
	run("choose the second file", chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{src2}))
	for deadline := time.Now().Add(20 * time.Second); proxy.up.Load()-up0 < 6<<20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the second upload does not progress (page: %s)", state())
		}
	}
	run("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#resumable")))
	up1 := proxy.up.Load()
	listed, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#resumable-list")))
	if !strings.Contains(listed, "2026/scans/followup.bin") {
		t.Fatalf("after the reload the page does not list the unfinished upload: %q", listed)
	}
	proxy.setRate(64 << 20)
	run("choose the same file again",
		chromedp.SendKeys(chromedp.CSS("#folder"), "2026/scans"),
		chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{src2}),
		chromedp.Poll[chromedp.Void](`(() => { const li = document.querySelector('#uploads li'); return !!li && (li.dataset.state === 'done' || li.dataset.state === 'error'); })()`,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)),
	)
	res2, err := chromedp.Run(bctx, chromedp.Evaluate[result](`(() => {
		const li = document.querySelector('#uploads li');
		const sha = li.querySelector('.sha-value');
		return {state: li.dataset.state, retries: li.dataset.retries, resumedAt: li.dataset.resumedAt,
			sha: sha ? sha.textContent : '', text: li.innerText, listed: ''};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	after := proxy.up.Load() - up1
	t.Logf("after the reload: state %s, resumed at byte %s, %d bytes sent after the reload", res2.State, res2.ResumedAt, after)
	var resumed2 int64
	fmt.Sscan(res2.ResumedAt, &resumed2)
	if res2.State != "done" || res2.Sha != want2 || resumed2 <= 0 || after >= size2 {
		t.Fatalf("upload after the reload did not resume and finish: %+v, %d bytes sent", res2, after)
	}
	if n, got := hashFile(t, c.storedPath("c1/2026/scans/followup.bin")); n != size2 || got != want2 {
		t.Fatalf("second stored file: %d bytes, sha %s", n, got)
	}

	// A second version of the file, from outside; the page shows both and
	// a manager makes the first current again.
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/2026/scans/followup.bin", strings.NewReader("version two"), nil), http.StatusCreated)
	poll := func(js string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second))
	}
	run("refresh the list", chromedp.Click(chromedp.CSS("#refresh")),
		poll(`!!document.querySelector('#files-body tr button[aria-label="Versions of 2026/scans/followup.bin"]')`))
	// The list may render again between finding a button and clicking it
	// (a node chromedp found is then gone): each click is looked up and
	// made in one script, and repeated while its effect has not shown.
	run("open the versions", poll(`(() => {
		if (document.querySelectorAll('.versions .version').length === 2) return true;
		const b = document.querySelector('button[aria-label="Versions of 2026/scans/followup.bin"]');
		if (b && !document.querySelector('.versions-row')) b.click();
		return false;
	})()`))
	run("make the first version current", poll(`(() => {
		const b = document.querySelector('.versions .version button[aria-label^="Make version"]');
		if (b) b.click();
		return !!b;
	})()`),
		poll(`!document.querySelector('.versions-row')`))
	if got := expectStatus(t, c.do("GET", "/api/v1/files/c1/2026/scans/followup.bin", nil, nil), http.StatusOK); sha(got) != want2 {
		t.Fatalf("after Make current the file reads %d bytes, want the first version", len(got))
	}

	b.checkConsole()
	t.Logf("test took %s", time.Since(began).Round(100*time.Millisecond))
}

// TestBrowserSingleSignOn opens the page as a single-sign-on proxy would
// deliver it (the user in a trusted header, no token): the page signs in by
// itself, offers no sign-out, and uploads and lists without a token.
func TestBrowserSingleSignOn(t *testing.T) {
	chromium := chromiumPath(t)
	c := newCluster(t, clusterOpts{
		webEnv:      map[string]string{"DEPOT_TRUSTED_USER_HEADER": "X-Remote-User", "DEPOT_TRUSTED_PROXIES": "127.0.0.1/32"},
		servicesEnv: map[string]string{"DEPOT_TRUST_WEB_USERS": "on"},
	})
	data, want := payloadBytes(79, 1<<20+17)
	src := filepath.Join(t.TempDir(), "consent-forms.pdf")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBrowser(t, chromium)
	b.run("open the page as alice via the SSO header",
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
				Headers: network.Headers{"X-Remote-User": "alice"},
			})
			return err
		}),
		chromedp.Navigate(c.web.url()+"/"),
		chromedp.WaitVisible(chromedp.CSS("#cohort")),
	)
	who, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](
		`document.getElementById('who-name').textContent + (document.getElementById('signout').hidden ? '' : ' +signout') + (document.getElementById('signin').hidden ? '' : ' +signin')`))
	if err != nil || who != "Signed in as alice (single sign-on)" {
		t.Fatalf("page under SSO: %q %v", who, err)
	}
	// The tus endpoint must honour the SSO user as the rest of the API does.
	resp := c.doAs("", "POST", tusPath, nil, map[string]string{
		"X-Remote-User": "alice", "Tus-Resumable": "1.0.0", "Upload-Length": "1",
		"Upload-Metadata": tusMeta("cohort", "c1", "filename", "probe.bin"),
	})
	readAll(t, resp)
	if resp.StatusCode == http.StatusUnauthorized {
		t.Fatal("the tus endpoint refused the trusted single-sign-on user")
	}
	b.run("upload under SSO",
		chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{src}),
		chromedp.Poll[chromedp.Void](`(() => { const li = document.querySelector('#uploads li'); return !!li && (li.dataset.state === 'done' || li.dataset.state === 'error') && !!document.querySelector('#files-body tr'); })()`,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)),
	)
	type result struct {
		Who, State, Sha, Listed string
		SignOut, Token          bool
	}
	res, err := chromedp.Run(b.ctx, chromedp.Evaluate[result](`(() => {
		const li = document.querySelector('#uploads li'), sha = li.querySelector('.sha-value');
		return {Who: document.getElementById('who-name').textContent, State: li.dataset.state,
			Sha: sha ? sha.textContent : '', Listed: document.getElementById('files-body').innerText,
			SignOut: !document.getElementById('signout').hidden, Token: !document.getElementById('signin').hidden};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Who != "Signed in as alice (single sign-on)" || res.SignOut || res.Token {
		t.Fatalf("page under SSO: %+v", res)
	}
	if res.State != "done" || res.Sha != want || !strings.Contains(res.Listed, "consent-forms.pdf") {
		t.Fatalf("upload under SSO: %+v (page: %s)", res, b.state())
	}
	checkOnDisk(t, c, "consent-forms.pdf", data)
	b.checkConsole()
}

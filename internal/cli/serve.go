package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"depot"
	"depot/apiclient"
	"depot/internal/config"
	"depot/internal/httpx"
	"depot/internal/tlsconf"
	"depot/maintenance"
	"depot/metrics"
	"depot/services"
	"depot/storage"
	"depot/web"
)

var serveVars = append([]config.Var{
	config.Role, config.Addr, config.InternalAddr, config.ServicesURL, config.InternalKey,
	config.InternalKeyFile, config.InternalKeys, config.InternalKeysFil, config.StorageURL,
	config.DatabaseURL, config.ChunkSize, config.ChunkRetries, config.ChunkBackoff, config.BodyIdle,
	config.UploadExpiry, config.TempTTL, config.ShutdownGrace, config.NodeName, config.LogLevel,
	config.TLSCert, config.TLSKey, config.InternalTLSCert, config.InternalTLSKey, config.InternalClientCA,
	config.ServicesCA, config.ServicesClientCrt, config.ServicesClientKey, config.ClockSkew,
	config.MaxUploadSize, config.MaxUploadsPerUser, config.MaxBuffers, config.ReadHeaderTimeout,
	config.MaxHeaderBytes, config.MetricsAddr, config.Pprof, config.TrustedUserHeader, config.TrustedProxies, config.TrustWebUsers,
	config.MaxOpenUploads, config.ServicesTimeout, config.SFTPAddr, config.SFTPHostKeyFile, config.SFTPMaxConns, config.KEKFile,
	config.OIDCIssuer, config.OIDCClientID, config.OIDCClientSecret, config.OIDCClientSecFile, config.OIDCCLIClientID,
	config.OIDCProviderName, config.OIDCScopes, config.PublicURL, config.SessionKeys, config.SessionKeysFile, config.SessionTTL,
	config.SessionMaxAge, config.OIDCCreateUsers, config.OIDCLinkUsers, config.OIDCUserClaim, config.OIDCGroupsClaim,
	config.OIDCGroupRoles, config.OIDCGroupRolesFile,
}, append(config.MaintenanceVars, config.ScanVars...)...) // the services role runs the scheduled jobs and the scan

func serveCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "run one tier: --role web or --role services",
		Args:  cobra.NoArgs,
	}
	bind(cmd, slices.Concat(serveVars, config.AuditVars)...)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s := settings{e: e, cmd: cmd}
		switch role := s.get(config.Role); role {
		case "web":
			return runWeb(cmd.Context(), s)
		case "services":
			return runServices(cmd.Context(), s)
		case "":
			return usageErr("refusing to start: no role given; set DEPOT_ROLE (or --role) to web or services")
		default:
			return usageErr("refusing to start: unknown role %q; use web or services", role)
		}
	}
	return cmd
}

// runWeb runs the public tier. It fails closed when given any storage or
// database setting: the web tier must have nowhere to store data.
func runWeb(ctx context.Context, s settings) error {
	for _, v := range []config.Var{config.StorageURL, config.DatabaseURL, config.KEKFile} {
		if s.isSet(v) {
			return usageErr("refusing to start: the web role must not be given %s; it stores nothing", v.Env)
		}
	}
	servicesURL := s.get(config.ServicesURL)
	if servicesURL == "" {
		return usageErr("refusing to start: the web role needs DEPOT_SERVICES_URL")
	}
	keys, err := s.keys(config.InternalKey, config.InternalKeyFile)
	if err != nil {
		return err
	}
	if len(keys) != 1 {
		return usageErr("refusing to start: the web role needs exactly one internal key (DEPOT_INTERNAL_KEY or DEPOT_INTERNAL_KEY_FILE)")
	}
	chunk, err := s.int(config.ChunkSize)
	if err != nil {
		return err
	}
	retries, err := s.int(config.ChunkRetries)
	if err != nil {
		return err
	}
	backoff, err := s.duration(config.ChunkBackoff)
	if err != nil {
		return err
	}
	idle, err := s.duration(config.BodyIdle)
	if err != nil {
		return err
	}
	maxBuffers, err := s.int(config.MaxBuffers)
	if err != nil {
		return err
	}
	maxSize, err := s.int(config.MaxUploadSize)
	if err != nil {
		return err
	}
	perUser, err := s.int(config.MaxUploadsPerUser)
	if err != nil {
		return err
	}
	servicesTimeout, err := s.duration(config.ServicesTimeout)
	if err != nil {
		return err
	}
	clientTLS, err := servicesTLS(s, servicesURL)
	if err != nil {
		return err
	}
	publicTLS, err := serverTLS(s, config.TLSCert, config.TLSKey, config.Var{})
	if err != nil {
		return err
	}
	proxies, err := parsePrefixes(s.get(config.TrustedProxies))
	if err != nil {
		return usageErr("%s: %v", config.TrustedProxies.Env, err)
	}
	if s.get(config.TrustedUserHeader) != "" {
		if err := checkUserHeaderProxies(proxies); err != nil {
			return err
		}
	}
	log := s.logger().With("role", "web")
	m := metrics.New("web")
	client := apiclient.New(apiclient.Config{
		BaseURL: servicesURL, Key: keys[0], ChunkSize: chunk, Retries: retries, Backoff: backoff,
		WebNode: s.nodeName(), TLS: clientTLS, MaxBuffers: maxBuffers, OnRetry: m.ChunkRetries.Inc,
		ProgressTimeout: servicesTimeout,
	})
	defer client.Close()
	sso, err := webOIDC(s, client) // single sign-on (oidc_wiring.go); nil when off
	if err != nil {
		return err
	}
	srv := web.New(web.Config{
		Backend: client, Log: log, BodyIdleTimeout: idle, ChunkSize: client.ChunkSize(),
		MaxUploadSize: int64(maxSize), MaxUploadsPerUser: perUser, Metrics: m,
		TrustedUserHeader: s.get(config.TrustedUserHeader), TrustedProxies: proxies, OIDC: sso,
	})
	certs := map[string]string{} // the certificates this process uses
	if publicTLS != nil {
		certs[config.TLSCert.Env] = s.get(config.TLSCert)
	}
	if clientTLS != nil {
		certs[config.ServicesCA.Env], certs[config.ServicesClientCrt.Env] = s.get(config.ServicesCA), s.get(config.ServicesClientCrt)
	}
	if err := m.WatchCertificates(certs, nil); err != nil {
		return usageErr("refusing to start: %v", err)
	}
	handler := srv.Handler()
	stopMetrics, err := serveMetrics(s, log, m, handler)
	if err != nil {
		return err
	}
	defer stopMetrics()
	watchKeyFile(ctx, s, config.InternalKey, config.InternalKeyFile, log, func(keys []string) { client.SetKey(keys[0]) })
	// The "listening" line describes the public listener; this one the
	// internal hop (web is the TLS client there).
	log.Info("services hop", "url", servicesURL, "tls", clientTLS != nil, "client_certificate", clientTLS != nil && len(clientTLS.Certificates) > 0)
	stopSFTP, err := startSFTP(ctx, s, srv, log) // sftp_wiring.go; a no-op when DEPOT_SFTP_ADDR is empty
	if err != nil {
		return err
	}
	defer stopSFTP()
	return serveHTTP(ctx, s, log, s.get(config.Addr), handler, publicTLS)
}

// runServices runs the services tier: storage, database and internal API.
func runServices(ctx context.Context, s settings) error {
	keys, err := s.keys(config.InternalKeys, config.InternalKeysFil)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return usageErr("refusing to start: the services role needs DEPOT_INTERNAL_KEYS or DEPOT_INTERNAL_KEYS_FILE")
	}
	expiry, err := s.duration(config.UploadExpiry)
	if err != nil {
		return err
	}
	ttl, err := s.duration(config.TempTTL)
	if err != nil {
		return err
	}
	idle, err := s.duration(config.BodyIdle)
	if err != nil {
		return err
	}
	skew, err := s.duration(config.ClockSkew)
	if err != nil {
		return err
	}
	maxSize, err := s.int(config.MaxUploadSize)
	if err != nil {
		return err
	}
	internalTLS, err := serverTLS(s, config.InternalTLSCert, config.InternalTLSKey, config.InternalClientCA)
	if err != nil {
		return err
	}
	maxOpen, err := s.int(config.MaxOpenUploads)
	if err != nil {
		return err
	}
	log := s.logger().With("role", "services")
	db, err := openDatabase(ctx, s.get(config.DatabaseURL))
	if err != nil {
		return err
	}
	defer db.Close()
	// A plain PUT's session waits for its web process only briefly: no
	// one else can continue it.
	plain := plainExpiry(idle)
	store, err := openStore(ctx, s, db, storage.Options{
		UploadExpiry: expiry, PlainExpiry: plain, MaxObjectSize: int64(maxSize)})
	if err != nil {
		return err
	}
	defer store.Close()
	if !s.isSet(config.KEKFile) {
		log.Warn("encryption at rest is off: stored files are in the clear on disk, in the bucket and in backups; set DEPOT_KEK_FILE (docs/security.md)")
	}
	// Signed audit checkpoints (when configured); stopped after the
	// maintenance jobs, with a last checkpoint.
	audit, stopCheckpoints, err := startCheckpoints(ctx, s, db, log)
	if err != nil {
		return err
	}
	defer stopCheckpoints()
	m := metrics.New("services")
	stopJobs, maint, err := startMaintenance(ctx, s, db, store, m, audit) // River periodic maintenance jobs
	if err != nil {
		return err
	}
	defer stopJobs()
	sso, err := servicesOIDC(ctx, s, db) // single sign-on (oidc_wiring.go); nil when off
	if err != nil {
		return err
	}
	gate, err := scanGate(s, log)
	if err != nil {
		return err
	}
	if gate != nil {
		checkClamd(ctx, gate, log)
	}
	core := services.NewCore(services.Config{
		Store: store, DB: db, Log: log, TempTTL: ttl, MaxOpenUploadsPerUser: maxOpen, Node: s.nodeName(),
		TrustWebUsers: s.get(config.TrustWebUsers) == "on", Metrics: m, OIDC: sso,
		Cleanup: func(ctx context.Context, dryRun bool) (any, error) { return maint.Cleanup(ctx, "request", dryRun) },
		Scan:    gate,
		OnInfected: func(ctx context.Context, uploadID, signature string) {
			maint.Raise(ctx, maintenance.Alert{Kind: maintenance.AlertInfected, Code: string(depot.CodeInfected),
				Message: "an upload was refused: the malware scanner found a signature in it; nothing was stored",
				Details: map[string]string{"upload_id": uploadID, "signature": signature}})
		},
	})
	stopReaper := reapPlainUploads(ctx, core, plain, log)
	defer stopReaper()
	srv := services.NewServer(services.ServerConfig{
		Core: core, Keys: keys, Log: log, BodyIdleTimeout: idle, ClockSkew: skew, Metrics: m,
	})
	certs := map[string]string{} // the certificates this process uses
	if internalTLS != nil {
		certs[config.InternalTLSCert.Env], certs[config.InternalClientCA.Env] = s.get(config.InternalTLSCert), s.get(config.InternalClientCA)
	}
	if err := m.WatchCertificates(certs, nil); err != nil {
		return usageErr("refusing to start: %v", err)
	}
	if dir := localStoragePath(s.get(config.StorageURL)); dir != "" {
		m.WatchVolume(dir)
	}
	handler := srv.Handler()
	stopMetrics, err := serveMetrics(s, log, m, handler)
	if err != nil {
		return err
	}
	defer stopMetrics()
	watchKeyFile(ctx, s, config.InternalKeys, config.InternalKeysFil, log, srv.SetKeys)
	return serveHTTP(ctx, s, log, s.get(config.InternalAddr), handler, internalTLS)
}

// serveHTTP listens on addr and serves h until ctx ends, then drains
// in-flight requests for the shutdown grace period and cancels the rest.
func serveHTTP(ctx context.Context, s settings, log *slog.Logger, addr string, h http.Handler, tlsCfg *tls.Config) error {
	grace, err := s.duration(config.ShutdownGrace)
	if err != nil {
		return err
	}
	headerTimeout, err := s.duration(config.ReadHeaderTimeout)
	if err != nil {
		return err
	}
	maxHeader, err := s.int(config.MaxHeaderBytes)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	base, cancelBase := context.WithCancelCause(context.Background())
	defer cancelBase(errors.New("server stopped"))
	srv := httpx.NewServer(base, h, log, httpx.ServerOptions{ReadHeaderTimeout: headerTimeout, MaxHeaderBytes: maxHeader})
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "mutual_tls", tlsCfg != nil && tlsCfg.ClientCAs != nil)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		cancelBase(errors.New("shutdown grace period over"))
		_ = srv.Close()
	}
	log.Info("stopped")
	return nil
}

// parsePrefixes parses a comma-separated list of addresses and CIDRs.
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// serveMetrics serves m on DEPOT_METRICS_ADDR, its own listener, when set:
// /metrics, /healthz, and /readyz answered by the tier's own readiness
// check (tier serves GET /readyz), so that a probe or a Prometheus
// blackbox check needs no access to the public or internal listener. With
// DEPOT_PPROF=on the profiler is served beside them.
func serveMetrics(s settings, log *slog.Logger, m *metrics.Set, tier http.Handler) (stop func(), err error) {
	addr := s.get(config.MetricsAddr)
	if addr == "" {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/", m.Handler())
	mux.Handle("GET /readyz", tier)
	switch s.get(config.Pprof) {
	case "on":
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		// Never the command line: whatever was passed on it (a secret by
		// mistake) would be served to anyone who reaches this listener.
		mux.HandleFunc("/debug/pprof/cmdline", http.NotFound)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	case "off", "":
	default:
		return nil, usageErr("%s must be on or off", config.Pprof.Env)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	srv := httpx.NewServer(context.Background(), mux, log, httpx.ServerOptions{})
	go func() { _ = srv.Serve(ln) }()
	log.Info("metrics listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// serverTLS builds a listener's TLS configuration from its certificate, key
// and (optional) client CA variables; nil when no certificate is configured.
func serverTLS(s settings, cert, key, clientCA config.Var) (*tls.Config, error) {
	if s.get(cert) == "" && s.get(key) == "" {
		if clientCA.Env != "" && s.get(clientCA) != "" {
			return nil, usageErr("refusing to start: %s needs %s and %s", clientCA.Env, cert.Env, key.Env)
		}
		return nil, nil
	}
	ca := ""
	if clientCA.Env != "" {
		ca = s.get(clientCA)
	}
	cfg, err := tlsconf.Server(s.get(cert), s.get(key), ca)
	if err != nil {
		return nil, usageErr("refusing to start: %s/%s: %v", cert.Env, key.Env, err)
	}
	return cfg, nil
}

// reapPlainUploads removes, at start and then every half expiry, the
// sessions of plain uploads whose request ended without a commit (the web
// process or its client died): they hold staging bytes that no client can
// continue.
func reapPlainUploads(ctx context.Context, core *services.Core, expiry time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(expiry / 2)
		defer t.Stop()
		for {
			if n, err := core.ExpireIdlePlain(ctx, expiry); err != nil && ctx.Err() == nil {
				log.Warn("removing abandoned plain uploads failed", "code", string(depot.ErrorCode(err)))
			} else if n > 0 {
				log.Info("abandoned plain uploads removed", "count", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

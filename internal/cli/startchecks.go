package cli

import (
	"crypto/tls"
	"net/netip"
	"net/url"

	"depot/internal/config"
	"depot/internal/tlsconf"
)

// Settings that contradict each other are refused at start, each with a
// message that says which ones and what to do: a deployment that looks
// protected but is not is worse than one that does not start.

// servicesTLS returns the web tier's TLS configuration for the hop to
// services: nil for http://. TLS client material (a CA, a client
// certificate or key) with an http:// URL is refused: the operator meant
// the hop to be encrypted, and tokens would cross it in plain text.
func servicesTLS(s settings, servicesURL string) (*tls.Config, error) {
	u, err := url.Parse(servicesURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, usageErr("refusing to start: %s must be http://host:port or https://host:port", config.ServicesURL.Env)
	}
	if u.Scheme == "http" {
		for _, v := range []config.Var{config.ServicesCA, config.ServicesClientCrt, config.ServicesClientKey} {
			if s.get(v) != "" {
				return nil, usageErr("refusing to start: %s is set but %s is http://: the hop to services would be plain text; use an https:// URL, or unset the TLS settings", v.Env, config.ServicesURL.Env)
			}
		}
		return nil, nil
	}
	cfg, err := tlsconf.Client(s.get(config.ServicesCA), s.get(config.ServicesClientCrt), s.get(config.ServicesClientKey))
	if err != nil {
		return nil, usageErr("refusing to start: TLS to services: %v", err)
	}
	return cfg, nil
}

// Widest prefixes a trusted proxy may be given when it vouches for users:
// a trusted user header is as strong as the set of hosts allowed to send
// it, and 0.0.0.0/0 lets anyone name any user.
const (
	minTrustedBits4 = 8
	minTrustedBits6 = 32
)

// checkUserHeaderProxies refuses a trusted user header without trusted
// proxies, or with a proxy prefix wider than /8 (IPv4) or /32 (IPv6).
func checkUserHeaderProxies(proxies []netip.Prefix) error {
	if len(proxies) == 0 {
		return usageErr("refusing to start: %s needs %s", config.TrustedUserHeader.Env, config.TrustedProxies.Env)
	}
	for _, p := range proxies {
		bits, min := p.Bits(), minTrustedBits6
		switch {
		case p.Addr().Is4():
			min = minTrustedBits4
		case p.Addr().Is4In6():
			bits, min = bits-96, minTrustedBits4
		}
		if bits < min {
			return usageErr("refusing to start: %s contains %s, wider than /%d (IPv4) or /%d (IPv6): any host in it could name any user in %s; list the proxies' own addresses",
				config.TrustedProxies.Env, p, minTrustedBits4, minTrustedBits6, config.TrustedUserHeader.Env)
		}
	}
	return nil
}

package cli

import (
	"context"
	"os"
	"slices"
	"strings"

	"depot/internal/config"
	"depot/internal/sessioncookie"
	"depot/servicedb"
	"depot/services"
	"depot/web"
)

// webOIDC builds web's single sign-on from DEPOT_OIDC_* (nil when
// DEPOT_OIDC_ISSUER is empty). It refuses to start without a client ID,
// a public URL or session cookie secrets; web never generates a secret
// itself (it would be lost at restart and differ between processes).
func webOIDC(s settings, events web.SessionEvents) (*web.OIDC, error) {
	issuer := s.get(config.OIDCIssuer)
	if issuer == "" {
		return nil, nil
	}
	for _, v := range []config.Var{config.OIDCClientID, config.PublicURL} {
		if s.get(v) == "" {
			return nil, usageErr("refusing to start: single sign-on (%s) needs %s", config.OIDCIssuer.Env, v.Env)
		}
	}
	secrets, err := s.secretList(config.SessionKeys, config.SessionKeysFile)
	if err != nil {
		return nil, err
	}
	if len(secrets) == 0 {
		return nil, usageErr("refusing to start: single sign-on needs %s or %s (the same for every web process)", config.SessionKeys.Env, config.SessionKeysFile.Env)
	}
	codec, err := sessioncookie.New(secrets)
	if err != nil {
		return nil, usageErr("%s: every secret must be at least %d characters", config.SessionKeys.Env, sessioncookie.MinSecretLen)
	}
	secret := s.get(config.OIDCClientSecret)
	if path := s.get(config.OIDCClientSecFile); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, usageErr("%s: %v", config.OIDCClientSecFile.Env, err)
		}
		secret = strings.TrimSpace(string(b))
	}
	ttl, err := s.duration(config.SessionTTL)
	if err != nil {
		return nil, err
	}
	maxAge, err := s.duration(config.SessionMaxAge)
	if err != nil {
		return nil, err
	}
	o, err := web.NewOIDC(web.OIDCConfig{
		Issuer: issuer, ClientID: s.get(config.OIDCClientID), ClientSecret: secret, CLIClientID: s.get(config.OIDCCLIClientID),
		ProviderName: s.get(config.OIDCProviderName), Scopes: strings.Fields(s.get(config.OIDCScopes)), PublicURL: s.get(config.PublicURL),
		Cookies: codec, SessionTTL: ttl, SessionMaxAge: maxAge, Events: events,
	})
	if err != nil {
		return nil, usageErr("refusing to start: single sign-on: %v", err)
	}
	return o, nil
}

// servicesOIDC builds services' ID token checking from DEPOT_OIDC_* (nil
// when DEPOT_OIDC_ISSUER is empty). Group mappings must name cohorts that
// exist: a mapping to a missing cohort refuses the start (roles fail
// closed, and a typo would otherwise grant nothing silently).
func servicesOIDC(ctx context.Context, s settings, db *servicedb.DB) (*services.OIDC, error) {
	issuer := s.get(config.OIDCIssuer)
	if issuer == "" {
		return nil, nil
	}
	clientID := s.get(config.OIDCClientID)
	if clientID == "" {
		return nil, usageErr("refusing to start: single sign-on (%s) needs %s", config.OIDCIssuer.Env, config.OIDCClientID.Env)
	}
	ids := []string{clientID}
	if cli := s.get(config.OIDCCLIClientID); cli != "" && cli != clientID {
		ids = append(ids, cli)
	}
	create, err := s.onOff(config.OIDCCreateUsers)
	if err != nil {
		return nil, err
	}
	link, err := s.onOff(config.OIDCLinkUsers)
	if err != nil {
		return nil, err
	}
	raw := s.get(config.OIDCGroupRoles)
	if path := s.get(config.OIDCGroupRolesFile); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, usageErr("%s: %v", config.OIDCGroupRolesFile.Env, err)
		}
		raw = string(b)
	}
	mappings, err := services.ParseGroupRoles(raw)
	if err != nil {
		return nil, usageErr("%s: %v", config.OIDCGroupRoles.Env, err)
	}
	o, err := services.NewOIDC(services.OIDCConfig{
		Issuer: issuer, ClientIDs: ids, CreateUsers: create, LinkUsers: link, UserClaim: s.get(config.OIDCUserClaim),
		GroupsClaim: s.get(config.OIDCGroupsClaim), GroupRoles: mappings, Store: db,
	})
	if err != nil {
		return nil, usageErr("refusing to start: %v", err)
	}
	if cohorts := o.Cohorts(); len(cohorts) > 0 {
		have, err := db.ListCohorts(ctx)
		if err != nil {
			return nil, err
		}
		for i, c := range cohorts {
			if !slices.ContainsFunc(have, func(h servicedb.Cohort) bool { return h.Name == c }) {
				// The cohort's name stays out of the message: it may be PHI.
				return nil, usageErr("refusing to start: %s: the cohort of mapping %d does not exist (depot cohorts add)", config.OIDCGroupRoles.Env, i+1)
			}
		}
	}
	return o, nil
}

// onOff reads an on/off variable.
func (s settings) onOff(v config.Var) (bool, error) {
	switch s.get(v) {
	case "on":
		return true, nil
	case "off", "":
		return false, nil
	}
	return false, usageErr("%s must be on or off", v.Env)
}

// secretList reads secrets from a comma-separated variable or a file (one
// per line; the file wins).
func (s settings) secretList(list, file config.Var) ([]string, error) {
	raw := s.get(list)
	if path := s.get(file); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, usageErr("%s: cannot read the file: %v", file.Env, err)
		}
		raw = strings.ReplaceAll(string(b), "\n", ",")
	}
	var out []string
	for _, k := range strings.Split(raw, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out, nil
}

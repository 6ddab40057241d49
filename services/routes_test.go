package services

import (
	"regexp"
	"testing"

	"depot/internal/openapicheck"
)

// TestRoutesMatchOpenAPI fails when an internal route exists in the code but
// not in docs/openapi/internal.yaml, or the reverse.
func TestRoutesMatchOpenAPI(t *testing.T) {
	spec, err := openapicheck.Operations("../docs/openapi/internal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wildcard := regexp.MustCompile(`\{[a-z]+\}`)
	var code []string
	for _, r := range Routes() {
		code = append(code, wildcard.ReplaceAllString(r, "{id}"))
	}
	onlyCode, onlySpec := openapicheck.Diff(code, spec)
	for _, r := range onlyCode {
		t.Errorf("route %s is in the code but not in the OpenAPI file", r)
	}
	for _, r := range onlySpec {
		t.Errorf("operation %s is in the OpenAPI file but not in the code", r)
	}
}

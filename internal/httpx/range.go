package httpx

import (
	"strconv"
	"strings"

	"depot"
)

// ParseRange parses a single "bytes=a-b" or "bytes=a-" range header. It
// returns nil for an empty header. Multiple ranges and suffix ranges
// ("bytes=-n") are refused with CodeRangeNotSatisf.
func ParseRange(h string) (*depot.Range, error) {
	if h == "" {
		return nil, nil
	}
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return nil, depot.Errorf(depot.CodeRangeNotSatisf, "only a single byte range is supported")
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok || first == "" {
		return nil, depot.Errorf(depot.CodeRangeNotSatisf, "only ranges of the form bytes=start-[end] are supported")
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return nil, depot.Errorf(depot.CodeRangeNotSatisf, "invalid range")
	}
	if last == "" {
		return &depot.Range{Offset: a, Length: -1}, nil
	}
	b, err := strconv.ParseInt(last, 10, 64)
	if err != nil || b < a {
		return nil, depot.Errorf(depot.CodeRangeNotSatisf, "invalid range")
	}
	return &depot.Range{Offset: a, Length: b - a + 1}, nil
}

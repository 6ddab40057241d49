package httpx

import (
	"strconv"
	"strings"

	"depot"
)

// ParseRange parses a Range header of one byte range: "bytes=a-b",
// "bytes=a-" or a suffix "bytes=-n". It returns nil (the whole body, as RFC
// 9110 allows) for an empty header, another unit, several ranges or a
// malformed one; a range that can never be satisfied (a suffix of zero
// bytes, an end before its start) is CodeRangeNotSatisf.
func ParseRange(h string) (*depot.Range, error) {
	spec, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return nil, nil
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return nil, nil
	}
	if first == "" {
		n, err := strconv.ParseInt(last, 10, 64)
		switch {
		case err != nil || n < 0:
			return nil, nil
		case n == 0:
			return nil, depot.Errorf(depot.CodeRangeNotSatisf, "a range of zero bytes")
		}
		return &depot.Range{Suffix: n, Length: -1}, nil
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return nil, nil
	}
	if last == "" {
		return &depot.Range{Offset: a, Length: -1}, nil
	}
	b, err := strconv.ParseInt(last, 10, 64)
	if err != nil {
		return nil, nil
	}
	if b < a {
		return nil, depot.Errorf(depot.CodeRangeNotSatisf, "the range ends before it starts")
	}
	return &depot.Range{Offset: a, Length: b - a + 1}, nil
}

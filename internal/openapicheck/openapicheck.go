// Package openapicheck reads the operations (method and path) of depot's
// OpenAPI files, so that tests can compare them with the routes in the code.
// It understands the plain layout of docs/openapi/*.yaml: paths indented by
// two spaces under "paths:", methods by four.
package openapicheck

import (
	"bufio"
	"os"
	"regexp"
	"sort"
	"strings"
)

var (
	pathLine   = regexp.MustCompile(`^  (/[^:]*):\s*$`)
	methodLine = regexp.MustCompile(`^    (get|put|post|delete|head|patch|options):\s*$`)
)

// Operations returns "METHOD /path" for every operation of the file, sorted.
func Operations(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ops []string
	inPaths, current := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && len(line) > 0 && line[0] != ' ' && line[0] != '#':
			inPaths = false
		case inPaths && pathLine.MatchString(line):
			current = pathLine.FindStringSubmatch(line)[1]
		case inPaths && current != "" && methodLine.MatchString(line):
			ops = append(ops, strings.ToUpper(methodLine.FindStringSubmatch(line)[1])+" "+current)
		}
	}
	sort.Strings(ops)
	return ops, sc.Err()
}

// Diff returns the entries of a missing from b and of b missing from a.
func Diff(a, b []string) (onlyA, onlyB []string) {
	in := func(xs []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range xs {
			m[x] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	for _, x := range a {
		if !mb[x] {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !ma[x] {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

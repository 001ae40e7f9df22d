// Command testsummary reads `go test -json` on stdin and prints what a
// plain `go test` run prints (each package's ok/FAIL line, the output of
// failing tests, build errors), then a closing list of every skipped test
// with its reason, so a green run never hides a gap.
//
// With AGENTKEYS_FORBID_SKIPS=1 (set by .ci/run) it exits non-zero when a
// test skipped for want of something CI provides: PostgreSQL, Chromium,
// SeaweedFS, the npm peers, nginx or root.
//
//	go test -json ./... | go run ./scripts/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// EnvForbidSkips turns a skip for a provided peer or privilege into a failure.
const EnvForbidSkips = "AGENTKEYS_FORBID_SKIPS"

// providedPeer matches skip reasons that name something .ci/run provides.
var providedPeer = regexp.MustCompile(`(?i)postgres|chromium|no browser|seaweed|AGENTKEYS_WEED_BIN|npm|node_modules|node is not on PATH|MCP peers|nginx|needs root|not root|as root`)

type event struct {
	Action      string
	Package     string
	ImportPath  string
	Test        string
	Output      string
	FailedBuild string
}

type key struct{ pkg, test string }

// Skip is one skipped test and the lines it logged.
type Skip struct {
	Package, Test, Reason string
}

type summary struct {
	out       io.Writer
	running   map[key][]string // output of tests not finished yet
	pkgOutput map[string][]string
	order     map[string][]string // tests of a package in start order
	skips     []Skip
	failed    bool
}

func newSummary(out io.Writer) *summary {
	return &summary{out: out, running: map[key][]string{}, pkgOutput: map[string][]string{}, order: map[string][]string{}}
}

func (s *summary) print(lines []string) {
	for _, l := range lines {
		io.WriteString(s.out, l)
	}
}

func noise(line string) bool {
	return strings.HasPrefix(line, "=== ")
}

// reason is what a skipped test logged, without go test's framing lines.
func reason(lines []string) string {
	var r []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || noise(l) || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		r = append(r, t)
	}
	return strings.Join(r, " ")
}

func (s *summary) handle(e event) {
	switch e.Action {
	case "build-output":
		io.WriteString(s.out, e.Output)
		return
	case "build-fail":
		s.failed = true
		return
	}
	if e.Test != "" {
		k := key{e.Package, e.Test}
		switch e.Action {
		case "run":
			s.order[e.Package] = append(s.order[e.Package], e.Test)
		case "output":
			s.running[k] = append(s.running[k], e.Output)
		case "pass":
			delete(s.running, k)
		case "skip":
			s.skips = append(s.skips, Skip{Package: e.Package, Test: e.Test, Reason: reason(s.running[k])})
			delete(s.running, k)
		case "fail":
			var keep []string
			for _, l := range s.running[k] {
				if !noise(l) {
					keep = append(keep, l)
				}
			}
			s.print(keep)
			delete(s.running, k)
		}
		return
	}
	switch e.Action {
	case "output":
		s.pkgOutput[e.Package] = append(s.pkgOutput[e.Package], e.Output)
	case "pass", "skip":
		// A passing package shows only its summary line, as go test does.
		for _, l := range s.pkgOutput[e.Package] {
			if strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "?   ") {
				io.WriteString(s.out, l)
			}
		}
		s.done(e.Package)
	case "fail":
		s.failed = true
		// Tests cut short (a panic, the timeout) show what they printed.
		for _, t := range s.order[e.Package] {
			k := key{e.Package, t}
			if lines, ok := s.running[k]; ok {
				for _, l := range lines {
					if !noise(l) {
						io.WriteString(s.out, l)
					}
				}
			}
		}
		for _, l := range s.pkgOutput[e.Package] {
			if !noise(l) {
				io.WriteString(s.out, l)
			}
		}
		if e.FailedBuild != "" && len(s.pkgOutput[e.Package]) == 0 {
			fmt.Fprintf(s.out, "FAIL\t%s [build failed]\n", e.Package)
		}
		s.done(e.Package)
	}
}

func (s *summary) done(pkg string) {
	for _, t := range s.order[pkg] {
		delete(s.running, key{pkg, t})
	}
	delete(s.order, pkg)
	delete(s.pkgOutput, pkg)
}

// report prints the skipped tests and returns those whose reason names a
// provided peer or privilege.
func (s *summary) report() []Skip {
	var forbidden []Skip
	if len(s.skips) == 0 {
		fmt.Fprintln(s.out, "skipped tests: none")
		return nil
	}
	sort.SliceStable(s.skips, func(i, j int) bool {
		if s.skips[i].Package != s.skips[j].Package {
			return s.skips[i].Package < s.skips[j].Package
		}
		return s.skips[i].Test < s.skips[j].Test
	})
	fmt.Fprintf(s.out, "\nskipped tests (%d) — each is a gap in this run:\n", len(s.skips))
	for _, sk := range s.skips {
		r := sk.Reason
		if r == "" {
			r = "(no reason given)"
		}
		fmt.Fprintf(s.out, "  SKIP %s %s: %s\n", sk.Package, sk.Test, r)
		if providedPeer.MatchString(r) {
			forbidden = append(forbidden, sk)
		}
	}
	return forbidden
}

func run(in io.Reader, out io.Writer, forbid bool) int {
	s := newSummary(out)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not an event (go command output on stdout): pass it on.
			fmt.Fprintf(out, "%s\n", line)
			continue
		}
		if e.Package == "" {
			e.Package = e.ImportPath
		}
		s.handle(e)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "testsummary: reading go test -json:", err)
		return 1
	}
	forbidden := s.report()
	code := 0
	if s.failed {
		code = 1
	}
	if forbid && len(forbidden) > 0 {
		fmt.Fprintf(out, "\n%s=1: %d test(s) skipped for want of a peer or privilege CI provides (PostgreSQL, Chromium, SeaweedFS, npm peers, nginx, root):\n", EnvForbidSkips, len(forbidden))
		for _, sk := range forbidden {
			fmt.Fprintf(out, "  %s %s\n", sk.Package, sk.Test)
		}
		code = 1
	}
	return code
}

func main() {
	os.Exit(run(os.Stdin, os.Stdout, os.Getenv(EnvForbidSkips) == "1"))
}

package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Module is the import path the binaries under test are built from.
const Module = "github.com/agentkeys/agentkeys"

// RunWithBinaries is a TestMain body: it builds each named command
// (cmd/<name> of this module) into a fresh temporary directory, hands
// their paths by name to use, runs the tests and exits with their code,
// removing the directory first. A failed build exits 1 before any test
// runs, with the compiler's output on stderr.
func RunWithBinaries(m *testing.M, use func(paths map[string]string), names ...string) {
	dir, err := os.MkdirTemp("", "agentkeys-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	paths, err := build(dir, names)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	use(paths)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string, names []string) (map[string]string, error) {
	gobin, err := exec.LookPath("go") // go test puts its own GOROOT/bin first on PATH
	if err != nil {
		return nil, fmt.Errorf("building the binaries under test needs the go command: %w", err)
	}
	paths := make(map[string]string, len(names))
	for _, name := range names {
		out := filepath.Join(dir, name)
		if b, err := exec.Command(gobin, "build", "-o", out, Module+"/cmd/"+name).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v\n%s", name, err, b)
		}
		paths[name] = out
	}
	return paths, nil
}

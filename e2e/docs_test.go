package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

// docFiles are the documents a user follows: README and docs/.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{filepath.Join("..", "README.md")}, files...)
}

var (
	mdLink   = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	repoPath = regexp.MustCompile("(?:^|[\\s(`])((?:docs|deploy|scripts|internal|e2e|cmd|\\.ci)/[A-Za-z0-9_./-]*[A-Za-z0-9_])")
)

// Every file a document points at exists in the repository: relative
// links, and paths like deploy/aws/data-policy.json in the text (docs/cli.md
// carries every binary's help, so their help is checked too).
func TestDocsReferOnlyToFilesInTheRepository(t *testing.T) {
	for _, doc := range docFiles(t) {
		text := readFile(t, doc)
		check := func(target, base string) {
			if _, err := os.Stat(filepath.Join(base, target)); err != nil {
				t.Errorf("%s refers to %s, which is not in the repository", strings.TrimPrefix(doc, "../"), target)
			}
		}
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			check(target, filepath.Dir(doc))
		}
		for _, m := range repoPath.FindAllStringSubmatch(text, -1) {
			check(m[1], "..")
		}
	}
}

// The documents and every binary's help stand alone: nothing cites a
// specification or reference notes outside the repository.
func TestDocsCiteNothingOutside(t *testing.T) {
	bad := regexp.MustCompile(`\bSPEC\b|SPEC\.md|\.\./shared|reference/[a-z-]+\.md`)
	for _, doc := range docFiles(t) {
		for i, line := range strings.Split(readFile(t, doc), "\n") {
			if bad.MatchString(line) {
				t.Errorf("%s:%d cites something outside the repository: %s", strings.TrimPrefix(doc, "../"), i+1, line)
			}
		}
	}
	// docs/cli.md holds every command's help, so the loop above covered
	// it; the source is checked too, for messages that are not help.
	out, err := exec.Command("grep", "-rnE", `\bSPEC\b|SPEC\.md|reference/[a-z-]+\.md|\.\./shared`, "--include=*.go", "--include=*.sh", "../internal", "../cmd", "../scripts").Output()
	if err == nil && len(out) > 0 {
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.Contains(line, "_test.go") {
				t.Errorf("code cites the specification: %s", line)
			}
		}
	}
}

// docBlock is one ```sh block and the doc-test annotation before it.
type docBlock struct {
	doc, note, code string
	line            int
}

var docNote = regexp.MustCompile(`^<!-- doc-test: (.+?) -->$`)

func shellBlocks(t *testing.T, doc string) []docBlock {
	t.Helper()
	var (
		blocks []docBlock
		cur    *docBlock
		prev   string
	)
	sc := bufio.NewScanner(strings.NewReader(readFile(t, doc)))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && strings.HasPrefix(line, "```"):
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.code += line + "\n"
		case line == "```sh" || line == "```bash" || line == "```shell":
			note := ""
			if m := docNote.FindStringSubmatch(prev); m != nil {
				note = m[1]
			}
			cur = &docBlock{doc: strings.TrimPrefix(doc, "../"), note: note, line: n}
		}
		if strings.TrimSpace(line) != "" {
			prev = line
		}
	}
	return blocks
}

// The shell commands in the documents run as written with the real
// binaries. A block that cannot run on one machine says so, and why, in
// an HTML comment right before it: <!-- doc-test: not run (reason) -->.
// <!-- doc-test: run with agentkeys dev --> runs a block in the
// environment `agentkeys dev` prints, as the document tells the reader;
// `; expect "text", …` after either names output the block must print.
func TestDocsShellBlocksRun(t *testing.T) {
	ran := 0
	for _, doc := range docFiles(t) {
		var env []string // shared by a document's blocks, in order
		home := t.TempDir()
		for _, b := range shellBlocks(t, doc) {
			// `; expect "a", "b"` lists output the block must print.
			var expect []string
			if note, exp, ok := strings.Cut(b.note, "; expect "); ok {
				b.note = note
				for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(exp, -1) {
					expect = append(expect, m[1])
				}
			}
			switch {
			case strings.HasPrefix(b.note, "not run ("):
				continue
			case b.note == "run with agentkeys dev":
				if env == nil {
					env = startDevForDocs(t, home)
				}
			case b.note != "" && b.note != "run":
				t.Errorf("%s:%d: unknown doc-test annotation %q (want \"not run (reason)\", \"run\" or \"run with agentkeys dev\")", b.doc, b.line, b.note)
				continue
			}
			ran++
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", b.code)
			cmd.Dir = home
			cmd.Env = append(docEnv(home), env...)
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				t.Errorf("%s:%d: the block does not run as written: %v\n%s\noutput:\n%s", b.doc, b.line, err, b.code, out)
			}
			for _, e := range expect {
				if !strings.Contains(string(out), e) {
					t.Errorf("%s:%d: the block does not print %q as the document says\noutput:\n%s", b.doc, b.line, e, out)
				}
			}
			t.Logf("%s:%d ran:\n%s", b.doc, b.line, out)
		}
	}
	if ran == 0 {
		t.Fatal("no document block ran")
	}
}

// docEnv is a reader's shell: the built binaries first on PATH, a fresh
// HOME, sessions in 0600 files.
func docEnv(home string) []string {
	run := filepath.Join(home, "run")
	os.MkdirAll(run, 0o700)
	return []string{
		"PATH=" + filepath.Dir(bin["agentkeys"]) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + home, "XDG_RUNTIME_DIR=" + run, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"AGENTKEYS_SESSION_STORE=file",
	}
}

// startDevForDocs runs `agentkeys dev` as the README says (plus extra
// flags) and returns the variables of the export lines it prints.
func startDevForDocs(t *testing.T, home string, extra ...string) []string {
	t.Helper()
	cmd := exec.Command(bin["agentkeys"], append([]string{"dev", "--backend-port", "0", "--broker-port", "0"}, extra...)...)
	cmd.Dir = home
	cmd.Env = docEnv(home)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := testkit.StartProc(t, cmd)
	lines := make(chan []string, 1)
	go func() {
		var env []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if kv, ok := strings.CutPrefix(sc.Text(), "export "); ok {
				env = append(env, kv)
			}
			if len(env) >= 2 {
				break
			}
		}
		lines <- env
		for sc.Scan() {
		}
	}()
	select {
	case env := <-lines:
		if len(env) < 2 {
			t.Fatalf("agentkeys dev printed no export lines\n%s", p.Stderr())
		}
		return env
	case <-p.Done():
		t.Fatalf("agentkeys dev exited: %v\n%s", p.Err(), p.Stderr())
	case <-time.After(60 * time.Second):
		t.Fatalf("agentkeys dev printed no export lines within 60 s\n%s", p.Stderr())
	}
	return nil
}

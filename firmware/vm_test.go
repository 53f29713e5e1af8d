package firmware

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vmDir holds the Node runner of the MicroPython VM tests.
const vmDir = "tests/vm"

// needNode returns the path of node after making sure the pinned
// MicroPython VM is installed (npm ci from the committed lockfile). It
// skips the test when node or npm is not installed at all.
func needNode(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the MicroPython VM tests need Node.js 20+ and npm (CI installs them)")
	}
	if _, err := os.Stat(filepath.Join(vmDir, "node_modules", "@micropython", "micropython-webassembly-pyscript", "micropython.mjs")); err == nil {
		return node
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed: cannot install the MicroPython VM (CI installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = vmDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", vmDir, err, out)
	}
	return node
}

// runVM runs run.mjs with args and returns its output.
func runVM(t testing.TB, node string, args ...string) string {
	t.Helper()
	fw, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	vectors := filepath.Join(fw, "..", "testdata", "vectors")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append(append([]string{"run.mjs"}, args...), fw, vectors)...)
	cmd.Dir = vmDir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if err != nil {
		t.Fatalf("node run.mjs %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestMicroPythonVM runs the codec and dispatch tests (tests/vm/vm_tests.py)
// under the real MicroPython 1.27 VM: SLIP, frames, CRC and CBOR against
// testdata/vectors, then link and mux dispatch driven by a fake host over
// SLIP bytes with a fake socket layer.
func TestMicroPythonVM(t *testing.T) {
	node := needNode(t)
	out := runVM(t, node)
	t.Log(out)
	if !strings.Contains(out, " passed, 0 failed") {
		t.Fatalf("VM tests did not all pass:\n%s", out)
	}
}

// TestEmbeddedFiles checks that what flash puts on the board is the
// firmware: main.py and every module of the uproxy package.
func TestEmbeddedFiles(t *testing.T) {
	want := map[string]bool{"main.py": true}
	mods, err := filepath.Glob("uproxy/*.py")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		want[filepath.ToSlash(m)] = true
	}
	got := Paths()
	if len(got) != len(want) {
		t.Fatalf("embedded %v, want %d files", got, len(want))
	}
	for _, p := range got {
		if !want[p] {
			t.Errorf("unexpected embedded file %s", p)
		}
	}
}

// BenchmarkMicroPythonVM reports what the firmware's protocol code costs per
// KiB forwarded in the MicroPython VM (tests/vm/vm_bench.py): time and heap
// allocated, for 2 KiB DATA frames received (SLIP, CRC, ARQ, CBOR, to a
// stream) and sent, and for the parts. Times are the VM's on this machine,
// not an ESP32's; heap figures use MicroPython's 32-bit object layout.
// Run it with
//
//	go test -run '^$' -bench MicroPythonVM -benchtime 1x ./firmware/
func BenchmarkMicroPythonVM(b *testing.B) {
	node := needNode(b)
	var out string
	for i := 0; i < b.N; i++ {
		out = runVM(b, node, "--bench", "--heap", strconv.Itoa(64<<20))
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "BENCH" {
			continue
		}
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			b.Fatalf("bad line %q", sc.Text())
		}
		b.ReportMetric(v, f[1]+"_"+f[3])
	}
	b.ReportMetric(0, "ns/op")
}

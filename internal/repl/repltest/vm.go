// Package repltest runs the real MicroPython VM (the WebAssembly build from
// npm) behind a pseudo-terminal, so that tests of internal/repl and of
// `uartproxy flash` talk to a real raw REPL over a real tty.
//
// StartVM needs node and npm; it runs `npm ci` in internal/repl/testdata/vm
// the first time (under a file lock, as test binaries run in parallel), and
// skips the test only when node or npm is not installed.
//
// Concurrency: a VM's methods are safe for concurrent use.
package repltest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/uartemu"
)

// vmPackage is the npm package that holds the VM.
const vmPackage = "@micropython/micropython-webassembly-pyscript"

// VM is a running MicroPython VM on a pseudo-terminal.
type VM struct {
	// Path is the serial device to open, a symlink to the pty.
	Path string

	cmd    *exec.Cmd
	pty    *uartemu.PTY
	stderr lockedBuffer
	toVM   chan struct{} // closed when the copy into node's stdin ends
	fromVM chan struct{} // closed when node's stdout ends
	once   sync.Once
}

// Options change how the VM is presented.
type Options struct {
	// RawPaste passes raw-paste requests through to the VM, whose raw-paste
	// mode is broken (bridge.mjs says how). By default the bridge answers
	// them as a MicroPython from before raw-paste mode.
	RawPaste bool
}

// Dir returns the directory of bridge.mjs and its package.json.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "vm")
}

// StartVM starts the VM and stops it when the test ends.
func StartVM(t testing.TB, o Options) *VM {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the tests against the real MicroPython VM need node and npm (Debian: apt-get install nodejs npm)")
	}
	dir := Dir()
	install(t, dir)

	path := filepath.Join(t.TempDir(), "ttyMicroPython")
	p, err := uartemu.NewPTY(uartemu.Symmetric(uartemu.Line{FlowControl: true}), path)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"bridge.mjs"}
	if o.RawPaste {
		args = append(args, "--raw-paste")
	}
	vm := &VM{Path: path, pty: p, cmd: exec.Command(node, args...)}
	vm.cmd.Dir = dir
	vm.cmd.Stderr = &vm.stderr
	stdin, err := vm.cmd.StdinPipe()
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	stdout, err := vm.cmd.StdoutPipe()
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	if err := vm.cmd.Start(); err != nil {
		p.Close()
		t.Fatal(err)
	}
	vm.toVM, vm.fromVM = make(chan struct{}), make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer close(vm.fromVM)
		// The banner first: the VM is ready once it has printed its
		// prompt, however long node took to start on a busy machine.
		banner := readUntil(stdout, []byte(">>> "))
		close(ready)
		p.Device().Write(banner)
		io.Copy(p.Device(), stdout)
		io.Copy(io.Discard, stdout) // after the pty closed
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Errorf("the MicroPython VM printed no prompt within 30s; node stderr: %s", vm.Stderr())
	}
	go func() {
		defer close(vm.toVM)
		io.Copy(stdin, p.Device())
		stdin.Close()
	}()
	t.Cleanup(func() {
		if err := vm.Close(); err != nil {
			t.Errorf("MicroPython VM: %v", err)
		}
	})
	return vm
}

// Stderr returns what node printed on stderr so far.
func (vm *VM) Stderr() string { return vm.stderr.String() }

// Close stops the VM: it closes its stdin and, when the VM does not exit
// within a second (it loops for ever in broken raw-paste mode), kills
// it. It returns an error when node failed for another reason.
func (vm *VM) Close() error {
	var err error
	vm.once.Do(func() {
		vm.pty.Close() // ends the copy to stdin, which closes it
		<-vm.toVM
		killed := false
		select {
		case <-vm.fromVM:
		case <-time.After(time.Second):
			vm.cmd.Process.Kill()
			killed = true
			<-vm.fromVM
		}
		err = vm.cmd.Wait()
		if killed {
			err = nil
		} else if err != nil {
			err = fmt.Errorf("node bridge.mjs: %w; stderr: %s", err, vm.Stderr())
		}
	})
	return err
}

// install runs `npm ci` in dir unless node_modules holds the version that
// package-lock.json pins.
func install(t testing.TB, dir string) {
	t.Helper()
	lockFile, err := os.OpenFile(filepath.Join(dir, ".npm-ci.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lockFile.Close()
	if err := syscall.Flock(int(lockFile.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lockFile.Fd()), syscall.LOCK_UN)

	want, err := lockedVersion(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := installedVersion(dir); got == want {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed: the tests against the real MicroPython VM need node and npm (Debian: apt-get install nodejs npm)")
	}
	t.Logf("installing %s@%s with npm ci in %s", vmPackage, want, dir)
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	if got, err := installedVersion(dir); got != want {
		t.Fatalf("npm ci in %s installed %s version %q, want %q (%v)", dir, vmPackage, got, want, err)
	}
}

func lockedVersion(lockPath string) (string, error) {
	b, err := os.ReadFile(lockPath)
	if err != nil {
		return "", err
	}
	var lock struct {
		Packages map[string]struct{ Version string } `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return "", fmt.Errorf("%s: %w", lockPath, err)
	}
	v := lock.Packages["node_modules/"+vmPackage].Version
	if v == "" {
		return "", fmt.Errorf("%s does not pin %s", lockPath, vmPackage)
	}
	return v, nil
}

func installedVersion(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", vmPackage, "package.json"))
	if err != nil {
		return "", err
	}
	var pkg struct{ Version string }
	err = json.Unmarshal(b, &pkg)
	return pkg.Version, err
}

// readUntil reads r until it has read token or r ends, and returns what
// it read.
func readUntil(r io.Reader, token []byte) []byte {
	var out []byte
	b := make([]byte, 256)
	for !bytes.Contains(out, token) {
		n, err := r.Read(b)
		out = append(out, b[:n]...)
		if err != nil {
			break
		}
	}
	return out
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

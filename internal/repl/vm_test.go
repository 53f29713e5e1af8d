package repl

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/repl/repltest"
	"github.com/uartproxy/uartproxy/internal/serialport"
)

// openVM starts the real MicroPython VM on a pty, opens the pty like a
// board's console and returns a Client in the raw REPL.
func openVM(t *testing.T, o repltest.Options, cfg Config) (*Client, *repltest.VM) {
	t.Helper()
	vm := repltest.StartVM(t, o)
	p, err := serialport.Open(serialport.Config{Path: vm.Path, Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	cfg.PlainPause = -1 // a pty has no receive buffer to overflow
	c := New(p, cfg)
	t.Cleanup(func() { c.Close() })
	if err := c.Enter(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("enter the raw REPL of the VM: %v (node stderr: %s)", err, vm.Stderr())
	}
	return c, vm
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestVMExec(t *testing.T) {
	c, _ := openVM(t, repltest.Options{}, Config{})
	ctx := ctxT(t, 20*time.Second)

	out, err := c.Exec(ctx, "for i in range(3):\n print('line', i)\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(outputLines(out), "|"); got != "line 0|line 1|line 2" {
		t.Errorf("output %q", out)
	}
	if c.RawPaste() || c.paste != pasteNo {
		t.Errorf("the bridge answers raw-paste requests like an old MicroPython: the client must have fallen back to plain raw mode (state %d)", c.paste)
	}

	out, err = c.Exec(ctx, "print('before')\n1/0\n")
	var re *RemoteError
	if !errors.As(err, &re) || re.Exception != "ZeroDivisionError" || !strings.Contains(re.Traceback, "Traceback") {
		t.Fatalf("1/0: err %v (%#v)", err, re)
	}
	if string(out) != "before\n" && string(out) != "before\r\n" {
		t.Errorf("output before the exception %q", out)
	}

	// A long snippet crosses several plain-raw chunks.
	long := "x=0\n" + strings.Repeat("x+=1\n", 400) + "print(x)\n"
	if out, err = c.Exec(ctx, long); err != nil || strings.TrimSpace(string(out)) != "400" {
		t.Fatalf("long snippet: %q, %v", out, err)
	}

	if _, err := c.Exec(ctx, "keep=42\n"); err != nil {
		t.Fatal(err)
	}
	if err := c.SoftReset(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err = c.Exec(ctx, "print(7*6)\n"); err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Fatalf("after the soft reset: %q, %v", out, err)
	}

	b, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.Implementation != "micropython" || b.Version != "1.27.0" || b.Platform != "webassembly" || b.MemFree <= 0 || b.FSFree <= 0 {
		t.Errorf("info %+v", b)
	}
	if c.chunkSize() != maxChunk {
		t.Errorf("chunk size %d with %d bytes free, want %d", c.chunkSize(), b.MemFree, maxChunk)
	}
}

func TestVMFiles(t *testing.T) {
	c, _ := openVM(t, repltest.Options{}, Config{})
	ctx := ctxT(t, 30*time.Second)
	if _, err := c.Info(ctx); err != nil {
		t.Fatal(err)
	}

	if err := c.MkdirAll(ctx, "/lib/deep/er"); err != nil {
		t.Fatal(err)
	}
	if err := c.MkdirAll(ctx, "/lib/deep"); err != nil { // exists: fine
		t.Fatal(err)
	}
	binary := make([]byte, 10000) // three chunks, base64 on the wire
	rand.Read(binary)
	text := []byte("# a module\nprint('it\\'s \"quoted\"\\n')\r\n\t\x00\x7f\xff end\n")
	files := map[string][]byte{"/lib/deep/blob.bin": binary, "/lib/text.py": text, "/empty": nil}
	for path, data := range files {
		sent := 0
		if err := c.WriteFile(ctx, path, data, func(n int) { sent += n }); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
		if sent != len(data) {
			t.Errorf("%s: progress said %d bytes, want %d", path, sent, len(data))
		}
	}
	for path, data := range files {
		got, err := c.ReadFile(ctx, path)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("read back %s: %d bytes, %v; want %d bytes", path, len(got), err, len(data))
		}
	}

	states, err := c.Stat(ctx, "/lib/deep/blob.bin", "/lib/text.py", "/nope.py", "/lib/deep", "/empty")
	if err != nil {
		t.Fatal(err)
	}
	want := []FileState{
		{Path: "/lib/deep/blob.bin", Exists: true, Size: 10000, SHA256: SHA256(binary)},
		{Path: "/lib/text.py", Exists: true, Size: int64(len(text)), SHA256: SHA256(text)},
		{Path: "/nope.py"},
		{Path: "/lib/deep", Exists: true, Dir: true},
		{Path: "/empty", Exists: true, SHA256: SHA256(nil)},
	}
	for i := range want {
		if states[i] != want[i] {
			t.Errorf("stat %d: %+v, want %+v", i, states[i], want[i])
		}
	}
	if _, err := c.ReadFile(ctx, "/nope.py"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read a missing file: %v, want fs.ErrNotExist", err)
	}

	// Overwrite: the rename replaces the old file; no .part is left.
	if err := c.WriteFile(ctx, "/lib/text.py", []byte("new"), nil); err != nil {
		t.Fatal(err)
	}
	out, err := c.Exec(ctx, "import os\nprint(sorted(os.listdir('/lib')))\n")
	if err != nil || strings.TrimSpace(string(out)) != "['deep', 'text.py']" {
		t.Errorf("/lib holds %q (%v)", out, err)
	}
	if err := c.Remove(ctx, "/lib/text.py"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "/lib/text.py"); err != nil { // gone: fine
		t.Fatal(err)
	}

	// The files survive a reboot into the friendly REPL and a new Enter.
	if err := c.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	// The VM runs no main.py: it prints its banner and the prompt.
	if out := c.Console(ctx, 5*time.Second, func(b []byte) bool { return bytes.Contains(b, []byte(">>> ")) }); !bytes.Contains(out, []byte("MicroPython v1.27.0")) {
		t.Errorf("console after the reboot: %q", out)
	}
	if _, err := c.Exec(ctx, "print(1)"); !errors.Is(err, ErrNotRaw) {
		t.Errorf("exec after Reboot: %v, want ErrNotRaw", err)
	}
	if err := c.Enter(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ReadFile(ctx, "/lib/deep/blob.bin"); err != nil || !bytes.Equal(got, binary) {
		t.Errorf("after the reboot: %d bytes, %v", len(got), err)
	}
}

// fullVFS is a filesystem mounted in the VM that takes cap bytes and then
// raises OSError(28), ENOSPC, as littlefs does on a full board.
const fullVFS = `import os
class FullFile:
 def __init__(self, v):
  self.v = v
 def write(self, b):
  if self.v.used + len(b) > self.v.cap:
   raise OSError(28)
  self.v.used += len(b)
  return len(b)
 def close(self):
  pass
class FullVFS:
 def __init__(self, cap):
  self.cap, self.used, self.removed = cap, 0, []
 def mount(self, ro, mkfs):
  pass
 def umount(self):
  pass
 def stat(self, p):
  if p in ('', '/'):
   return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
  raise OSError(2)
 def statvfs(self, p):
  return (512, 512, 8, 1, 1, 0, 0, 0, 0, 255)
 def open(self, p, m):
  return FullFile(self)
 def remove(self, p):
  self.removed.append(p)
 def ilistdir(self, p):
  return iter(())
full = FullVFS(3000)
os.mount(full, '/full')
`

func TestVMFilesystemFull(t *testing.T) {
	c, _ := openVM(t, repltest.Options{}, Config{ChunkSize: 1024})
	ctx := ctxT(t, 20*time.Second)
	if _, err := c.Exec(ctx, fullVFS); err != nil {
		t.Fatal(err)
	}
	err := c.WriteFile(ctx, "/full/big.py", bytes.Repeat([]byte("x = 1\n"), 1000), nil)
	if !errors.Is(err, ErrFilesystemFull) || !strings.Contains(err.Error(), "the board's filesystem is full") {
		t.Fatalf("write past the end of the filesystem: %v", err)
	}
	var re *RemoteError
	if !errors.As(err, &re) || re.Errno != 28 || re.Name != "ENOSPC" {
		t.Errorf("remote error %#v", re)
	}
	out, err := c.Exec(ctx, "print(full.removed)\n")
	if err != nil || strings.TrimSpace(string(out)) != "['/big.py.part']" {
		t.Errorf("the partial file was not removed: %q, %v", out, err)
	}
}

// TestVMRawPasteBroken lets the client meet the VM's own raw-paste mode,
// which ends the transfer and never answers again: the client must fail
// with a clear error within its timeouts, not hang.
func TestVMRawPasteBroken(t *testing.T) {
	c, _ := openVM(t, repltest.Options{RawPaste: true}, Config{Timeout: 500 * time.Millisecond, ExecTimeout: time.Second})
	start := time.Now()
	_, err := c.Exec(ctxT(t, 20*time.Second), "print('hello')\n")
	if err == nil {
		t.Fatal("exec in the VM's broken raw-paste mode succeeded")
	}
	if !errors.Is(err, ErrNoAnswer) || !strings.Contains(err.Error(), "raw-paste") || !strings.Contains(err.Error(), "--no-raw-paste") {
		t.Errorf("error %q: want a raw-paste error that matches ErrNoAnswer and names --no-raw-paste", err)
	}
	t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

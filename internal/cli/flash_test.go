package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/uartproxy/uartproxy/firmware"
	"github.com/uartproxy/uartproxy/internal/emulator"
	"github.com/uartproxy/uartproxy/internal/repl"
	"github.com/uartproxy/uartproxy/internal/repl/repltest"
	"github.com/uartproxy/uartproxy/internal/serialport"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

// quickFlash makes flash wait less: the VM and the emulator answer at once.
func quickFlash(t *testing.T) {
	t.Helper()
	oldREPL, oldSettle := flashREPL, flashSettle
	flashREPL = repl.Config{Timeout: 5 * time.Second, ExecTimeout: 20 * time.Second, PlainPause: -1}
	flashSettle = 300 * time.Millisecond
	t.Cleanup(func() { flashREPL, flashSettle = oldREPL, oldSettle })
}

// vmClient opens the VM's console with a REPL client in the raw REPL.
func vmClient(t *testing.T, vm *repltest.VM) *repl.Client {
	t.Helper()
	p, err := serialport.Open(serialport.Config{Path: vm.Path, Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	c := repl.New(p, repl.Config{PlainPause: -1})
	t.Cleanup(func() { c.Close() })
	if err := c.Enter(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}

// readBack returns a file on the VM's filesystem.
func readBack(t *testing.T, vm *repltest.VM, path string) []byte {
	t.Helper()
	c := vmClient(t, vm)
	defer c.Close()
	b, err := c.ReadFile(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// flashRun runs flash with args and checks that the password is nowhere
// in what it printed.
func flashRun(t *testing.T, password string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	stdout, stderr, err = run(t, NewRoot(), append([]string{"flash", "--log-level", "trace"}, args...)...)
	if password != "" && (strings.Contains(stdout, password) || strings.Contains(stderr, password) ||
		err != nil && strings.Contains(err.Error(), password)) {
		t.Fatalf("the password is in flash's output:\nstdout %s\nstderr %s\nerr %v", stdout, stderr, err)
	}
	return stdout, stderr, err
}

func decodeResult(t *testing.T, out string) flashResult {
	t.Helper()
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("want one line of JSON, got %q", out)
	}
	var r flashResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	return r
}

func TestFlashVM(t *testing.T) {
	quickFlash(t)
	vm := repltest.StartVM(t, repltest.Options{})
	const password = "correct horse battery"
	t.Setenv(envWiFiPassword, password)

	// First run: everything is written.
	out, stderr, err := flashRun(t, password, "--port", vm.Path, "--wifi-ssid", "home net", "--uart-tx", "4", "--uart-rx", "5", "--json")
	if err != nil {
		t.Fatalf("flash: %v\n%s", err, stderr)
	}
	r := decodeResult(t, out)
	var total int64
	paths := firmware.Paths()
	if len(r.Files) != len(paths) {
		t.Fatalf("%d files in the result, the firmware has %d", len(r.Files), len(paths))
	}
	for _, fl := range r.Files {
		want, err := fs.ReadFile(firmware.FS(), strings.TrimPrefix(fl.Path, "/"))
		if err != nil || fl.Action != actionWritten || fl.Size != len(want) || fl.SHA256 != repl.SHA256(want) {
			t.Errorf("file %+v (%v)", fl, err)
		}
		total += int64(len(want))
	}
	if r.Files[len(r.Files)-1].Path != "/main.py" {
		t.Errorf("main.py is not written last: %v", r.Files)
	}
	wantConfig := `{
  "baud": 921600,
  "flow": "rtscts",
  "password": "correct horse battery",
  "rx": 5,
  "ssid": "home net",
  "tx": 4
}
`
	if r.Config.Action != actionWritten || r.Config.PasswordLength != len(password) || r.Config.Values["ssid"] != "home net" {
		t.Errorf("config %+v", r.Config)
	}
	if r.BytesWritten != total+int64(len(wantConfig)) || !r.Restarted || r.RawPaste || r.DryRun {
		t.Errorf("result %+v: want %d bytes written, restarted, plain raw mode", r, total+int64(len(wantConfig)))
	}
	if r.Board.Version != "1.27.0" || r.Warning == "" {
		t.Errorf("board %+v, warning %q (the VM runs no main.py: flash says so)", r.Board, r.Warning)
	}
	for _, p := range paths {
		got := readBack(t, vm, "/"+p)
		want, _ := fs.ReadFile(firmware.FS(), p)
		if !bytes.Equal(got, want) {
			t.Errorf("%s on the board differs from the firmware", p)
		}
	}
	if got := string(readBack(t, vm, configPath)); got != wantConfig {
		t.Errorf("%s on the board:\n%s\nwant\n%s", configPath, got, wantConfig)
	}

	// Second run, as text: nothing to write; the board keeps its config.
	os.Unsetenv(envWiFiPassword)
	out, stderr, err = flashRun(t, password, "--port", vm.Path)
	if err != nil {
		t.Fatalf("flash again: %v\n%s", err, stderr)
	}
	if strings.Contains(out, "written ") || strings.Count(out, "unchanged") != len(paths)+1 ||
		!strings.Contains(out, `ssid "home net", (password: 21 characters, not shown)`) || !strings.Contains(out, "restarted   0 bytes written") {
		t.Errorf("second run printed\n%s", out)
	}

	// A dry run with a new network: only the config would change, and
	// nothing is written.
	pwFile := filepath.Join(t.TempDir(), "wifi")
	os.WriteFile(pwFile, []byte("other password\n"), 0o600)
	out, stderr, err = flashRun(t, "other password", "--port", vm.Path, "--dry-run", "--wifi-ssid", "office", "--wifi-password-file", pwFile, "--json")
	if err != nil {
		t.Fatalf("flash --dry-run: %v\n%s", err, stderr)
	}
	r = decodeResult(t, out)
	if r.Config.Action != actionWouldWrite || r.Config.PasswordLength != len("other password") || !r.DryRun || r.BytesWritten != 0 {
		t.Errorf("dry run: %+v", r)
	}
	for _, fl := range r.Files {
		if fl.Action != actionUnchanged {
			t.Errorf("dry run: %s %s", fl.Path, fl.Action)
		}
	}
	out, _, err = flashRun(t, "other password", "--port", vm.Path, "--dry-run", "--wifi-ssid", "office", "--wifi-password-file", pwFile)
	if err != nil || !strings.Contains(out, `would write /uproxy.json           baud 921600, flow "rtscts", rx 5, ssid "office", (password: 14 characters, not shown), tx 4`) ||
		!strings.Contains(out, "dry run     nothing written") {
		t.Errorf("dry run as text: %v\n%s", err, out)
	}
	if got := string(readBack(t, vm, configPath)); got != wantConfig {
		t.Errorf("the dry run changed %s:\n%s", configPath, got)
	}

	// --force writes everything again.
	out, stderr, err = flashRun(t, password, "--port", vm.Path, "--force", "--json")
	if err != nil {
		t.Fatalf("flash --force: %v\n%s", err, stderr)
	}
	r = decodeResult(t, out)
	if r.BytesWritten != total+int64(len(wantConfig)) {
		t.Errorf("--force wrote %d bytes, want %d", r.BytesWritten, total+int64(len(wantConfig)))
	}
}

// TestFlashWatchdog plays an interrupted firmware that started the ESP32's
// watchdog: flash must lengthen it before it writes.
func TestFlashWatchdog(t *testing.T) {
	quickFlash(t)
	vm := repltest.StartVM(t, repltest.Options{})
	c := vmClient(t, vm)
	setup := `import sys
class WDT:
 def __init__(self, timeout):
  with open('/wdt.log', 'w') as f:
   f.write(str(timeout))
class M:
 pass
machine = M()
machine.WDT = WDT
config = M()
config.load = lambda: {'wdt_ms': 20000}
sys.modules['machine'] = machine
sys.modules['uproxy.config'] = config
sys.modules['uproxy.app'] = M()
`
	if _, err := c.Exec(t.Context(), setup); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, stderr, err := flashRun(t, "", "--port", vm.Path, "--dry-run"); err != nil {
		t.Fatalf("flash: %v\n%s", err, stderr)
	}
	if got := string(readBack(t, vm, "/wdt.log")); got != "600000" {
		t.Errorf("the watchdog was set to %q ms, want 600000", got)
	}
}

// emulatedFirmware runs the emulated ESP32 on a pty, as the data UART
// that --check-port watches, announcing firmware version.
func emulatedFirmware(t *testing.T, version string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ttyData")
	p, err := uartemu.NewPTY(uartemu.Symmetric(uartemu.Line{FlowControl: true}), path)
	if err != nil {
		t.Fatal(err)
	}
	dc := emulator.DefaultConfig()
	dc.Firmware = version
	dev, err := emulator.New(p.Device(), dc)
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dev.Close()
		p.Close()
	})
	return path
}

func TestFlashCheckPort(t *testing.T) {
	quickFlash(t)
	vm := repltest.StartVM(t, repltest.Options{})
	version := firmwareVersion()
	if version == "" {
		t.Fatal("no VERSION in firmware/uproxy/__init__.py")
	}

	data := emulatedFirmware(t, version)
	out, stderr, err := flashRun(t, "", "--port", vm.Path, "--check-port", data, "--check-timeout", "5s", "--json")
	if err != nil {
		t.Fatalf("flash --check-port: %v\n%s", err, stderr)
	}
	r := decodeResult(t, out)
	if c := r.Check; c == nil || !c.OK || c.Firmware != version || c.Model != emulator.DefaultConfig().Model || c.Port != data {
		t.Errorf("check %+v", r.Check)
	}
	out, _, err = flashRun(t, "", "--port", vm.Path, "--check-port", data, "--check-timeout", "5s")
	if err != nil || !strings.Contains(out, "check       HELLO from firmware "+version+" (esp32c3 (emulated)) on "+data) {
		t.Errorf("text: %v\n%s", err, out)
	}

	// A dry run checks the firmware the board has.
	out, _, err = flashRun(t, "", "--port", vm.Path, "--check-port", data, "--check-timeout", "5s", "--dry-run", "--data-baud", "460800", "--json")
	if err != nil {
		t.Fatalf("flash --dry-run --check-port: %v", err)
	}
	if r := decodeResult(t, out); !r.DryRun || r.Check == nil || !r.Check.OK || r.Config.Action != actionWouldWrite {
		t.Errorf("dry run: %+v, check %+v", r, r.Check)
	}

	// Another firmware answers: flash fails, and says which.
	other := emulatedFirmware(t, "0.0.1-old")
	out, _, err = flashRun(t, "", "--port", vm.Path, "--check-port", other, "--check-timeout", "5s")
	if err == nil || !strings.Contains(err.Error(), `the board runs firmware "0.0.1-old", not "`+version+`"`) || !strings.Contains(out, "check       FAILED") {
		t.Errorf("old firmware on the data UART: %v\n%s", err, out)
	}

	// Nothing answers.
	silent := filepath.Join(t.TempDir(), "ttySilent")
	p, err := uartemu.NewPTY(uartemu.Symmetric(uartemu.Line{}), silent)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	_, _, err = flashRun(t, "", "--port", vm.Path, "--check-port", silent, "--check-timeout", "500ms", "--json")
	if err == nil || !strings.Contains(err.Error(), "no HELLO from the firmware on "+silent+" within 500ms") {
		t.Errorf("silent data UART: %v", err)
	}
	t.Logf("silent data UART: flash failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

func TestFlashUsageErrors(t *testing.T) {
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{}, "--port is required"},
		{[]string{"--port", "/dev/x", "--check-port", "/dev/x"}, "--check-port is the data UART"},
		{[]string{"--port", "/dev/x", "--uart-tx", "49"}, "--uart-tx 49: want a GPIO number 0..48"},
		{[]string{"--port", "/dev/x", "--uart-rts", "-2"}, "--uart-rts -2: want a GPIO number 0..48 or -1 for none"},
		{[]string{"--port", "/dev/x", "--uart-id", "4"}, "--uart-id 4: want 0..3"},
		{[]string{"--port", "/dev/x", "--data-baud", "100"}, "--data-baud 100"},
		{[]string{"--port", "/dev/x", "--wifi-ssid", ""}, "--wifi-ssid"},
		{[]string{"--port", "/dev/x", "--wifi-ssid", "x", "--wifi-password-file", short}, "the Wi-Fi password has 3 characters"},
		{[]string{"--port", "/dev/x", "--flow", "xon"}, "want one of rtscts, none"},
		{[]string{"--port", "/dev/x", "--wifi-password", "x"}, "unknown flag: --wifi-password"},
	}
	for _, tt := range tests {
		_, _, err := run(t, NewRoot(), append([]string{"flash"}, tt.args...)...)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("flash %q: %v, want a usage error with %q", tt.args, err, tt.want)
		}
	}
	// A port that is not there: an error that says so, not a usage error.
	_, _, err := run(t, NewRoot(), "flash", "--port", filepath.Join(t.TempDir(), "ttyNone"))
	var ue *UsageError
	if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "is the adapter plugged in?") {
		t.Errorf("missing port: %v", err)
	}
}

// TestFlashPasswordPrompt types the password on a terminal.
func TestFlashPasswordPrompt(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	var f flashFlags
	cmd := &cobra.Command{}
	f.addTo(cmd)
	if err := cmd.ParseFlags([]string{"--wifi-ssid", "home"}); err != nil {
		t.Fatal(err)
	}
	f.SSID = "home"
	var prompt bytes.Buffer
	cmd.SetIn(tty)
	cmd.SetErr(&prompt)
	t.Setenv(envWiFiPassword, "")
	go ptmx.Write([]byte("typed secret 1\r"))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	var pw secret
	go func() {
		defer close(done)
		pw, err = f.password(cmd)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the prompt did not return")
	}
	if err != nil || pw.value != "typed secret 1" || !pw.set {
		t.Fatalf("password %q, %v", pw.value, err)
	}
	if !strings.Contains(prompt.String(), `Wi-Fi password for "home"`) || strings.Contains(prompt.String(), "typed secret") {
		t.Errorf("prompt %q", prompt.String())
	}
	if pw.String() != "(password: 14 characters, not shown)" {
		t.Errorf("String() = %q", pw.String())
	}
}

func TestMergeConfig(t *testing.T) {
	old := []byte(`{"ssid": "home", "password": "old password", "hostname": "attic", "wdt_ms": 0, "tx": 21, "baud": 460800}`)
	f := &flashFlags{SSID: "home", DataBaud: 921600, Flow: flowRTSCTS, RX: 20, RTS: -1}
	changedOf := func(names ...string) func(string) bool {
		return func(n string) bool {
			for _, x := range names {
				if x == n {
					return true
				}
			}
			return false
		}
	}
	tests := []struct {
		name    string
		old     []byte
		changed []string
		pw      secret
		want    string
	}{
		{"nothing given keeps the board's", old, nil, secret{},
			`{"baud":460800,"flow":"rtscts","hostname":"attic","password":"old password","ssid":"home","tx":21,"wdt_ms":0}`},
		{"flags change what they name", old, []string{"uart-rx", "uart-rts", "data-baud"}, secret{value: "new password", set: true},
			`{"baud":921600,"flow":"rtscts","hostname":"attic","password":"new password","rts":-1,"rx":20,"ssid":"home","tx":21,"wdt_ms":0}`},
		{"a new network drops the old password", old, []string{"wifi-ssid"}, secret{}, ""},
		{"no file", nil, nil, secret{}, `{"baud":921600,"flow":"rtscts"}`},
		{"not JSON", []byte("{oops"), nil, secret{}, `{"baud":921600,"flow":"rtscts"}`},
	}
	for _, tt := range tests {
		g := *f
		if tt.name == "a new network drops the old password" {
			g.SSID = "office"
			tt.want = `{"baud":460800,"flow":"rtscts","hostname":"attic","password":"","ssid":"office","tx":21,"wdt_ms":0}`
		}
		c := mergeConfig(tt.old, &g, changedOf(tt.changed...), tt.pw, zerolog.Nop())
		got, _ := json.Marshal(map[string]any(c))
		if string(got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
		if s := c.String(); strings.Contains(s, "password\"") || strings.Contains(s, "old password") || strings.Contains(s, "new password") {
			t.Errorf("%s: String() shows the password: %s", tt.name, s)
		}
	}
}

// TestFlashProgressBar runs flash with its stderr on a terminal: it draws
// a progress bar of the bytes written there.
func TestFlashProgressBar(t *testing.T) {
	quickFlash(t)
	vm := repltest.StartVM(t, repltest.Options{})
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&screen, ptmx)
	}()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(tty)
	root.SetArgs([]string{"flash", "--port", vm.Path, "--log-level", "error"})
	if err := root.ExecuteContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	<-read
	if !strings.Contains(screen.String(), "flashing") || !strings.Contains(screen.String(), "% |█") {
		t.Errorf("no progress bar on the terminal: %q", screen.String())
	}
	if !strings.Contains(out.String(), "written ") {
		t.Errorf("stdout %q", out.String())
	}
}

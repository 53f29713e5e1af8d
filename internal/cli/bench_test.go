package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/uartproxy/uartproxy/internal/benchrun"
	"github.com/uartproxy/uartproxy/internal/emulator"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

// benchArgs measure an emulated device quickly: 300 KB/s each way, short
// windows.
var benchArgs = []string{"bench", "--emulate", "--baud", "3000000", "--duration", "300ms"}

// checkBenchReport checks what every bench report must hold.
func checkBenchReport(t *testing.T, r benchrun.Report, deviceSeen bool) {
	t.Helper()
	if r.Baud != 3000000 || r.LineRate != 300000 || r.Duration != 0.3 || r.DeviceCounters != deviceSeen || r.Verdict == "" {
		t.Errorf("report %+v", r)
	}
	var names []string
	for _, p := range r.Phases {
		names = append(names, p.Name)
		if (p.Device != nil) != deviceSeen {
			t.Errorf("%s: device figures %+v, want them only when the device is seen", p.Name, p.Device)
		}
		for _, g := range []*benchrun.Goodput{p.Up, p.Down} {
			// Counted where the host hands bytes to the link, an upload
			// includes what still waits in the pty and adapter buffers: a
			// few KiB, some percent of a 300 ms window at 3 Mbaud.
			limit := 1.0
			if g != nil && g.CountedAt == benchrun.CountedHostSent {
				limit = 1.1
			}
			if g != nil && !(g.LineShare > 0 && g.LineShare < limit) {
				t.Errorf("%s: goodput %+v, want a share of the line in (0, %v)", p.Name, *g, limit)
			}
		}
	}
	if want := []string{"echo", "up", "down", "both"}; !slices.Equal(names, want) {
		t.Fatalf("phases %v, want %v", names, want)
	}
	if rtt := r.Phases[0].RTT; rtt == nil || rtt.Count == 0 || rtt.MedianMS <= 0 {
		t.Errorf("echo RTT %+v", rtt)
	}
	if d := r.Phases[2].Down; d == nil || d.Verified <= 0 {
		t.Errorf("download %+v: no bytes checked against the source pattern", d)
	}
}

func TestBenchEmulateText(t *testing.T) {
	out, stderr, err := run(t, NewRoot(), benchArgs...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 8 {
		t.Fatalf("printed %d lines, want a header, a table of 6 lines and a verdict:\n%s", len(lines), out)
	}
	want := []string{
		"emulated ESP32, clean line at 3000000 baud (ceiling 300,000 B/s), flow control rtscts; each phase 300ms after 300ms of warm-up",
		"phase ", "echo (idle link) ", "host → device ", "device → host ", "both ways: up ", "  down ", "verdict: ",
	}
	for i, w := range want {
		if !strings.HasPrefix(strings.TrimLeft(lines[i], " "), strings.TrimLeft(w, " ")) {
			t.Errorf("line %d: %q, want it to start with %q", i, lines[i], w)
		}
		if strings.HasSuffix(lines[i], " ") {
			t.Errorf("line %d ends in spaces: %q", i, lines[i])
		}
	}
	for _, col := range []string{"goodput B/s", "of line", "CRC err host/dev", "retx host/dev", "timeouts host/dev", "RTT min/median/p99"} {
		if !strings.Contains(lines[1], col) {
			t.Errorf("table header %q lacks %q", lines[1], col)
		}
	}
	if !strings.Contains(lines[2], " ms, ") || !strings.Contains(lines[3], "%") {
		t.Errorf("rows without figures:\n%s", out)
	}
	if !strings.Contains(lines[7], "no CRC errors") {
		t.Errorf("verdict on a clean line: %q", lines[7])
	}
	if strings.Contains(stderr, "\r") || strings.Contains(stderr, "█") {
		t.Errorf("a progress bar went to stderr, which is not a terminal: %q", stderr)
	}
}

func TestBenchEmulateJSON(t *testing.T) {
	out, _, err := run(t, NewRoot(), append(benchArgs, "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("want one line of JSON, got %q", out)
	}
	var r benchrun.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	checkBenchReport(t, r, true)
	if r.Target != "emulated ESP32, clean line" || r.Flow != "rtscts" {
		t.Errorf("target %q, flow %q", r.Target, r.Flow)
	}
	if up := r.Phases[1].Up; up == nil || up.CountedAt != benchrun.CountedDevice {
		t.Errorf("upload %+v, want it counted at the device", up)
	}
}

// TestBenchEmulateV3 measures the seed's v3 board emulator.
func TestBenchEmulateV3(t *testing.T) {
	out, _, err := run(t, NewRoot(), append(benchArgs, "--protocol", "v3", "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Protocol string `json:"protocol"`
		benchrun.Report
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	checkBenchReport(t, r.Report, false)
	if r.Protocol != "v3" || r.Target != "emulated ESP32 with the seed's v3 firmware, clean line" {
		t.Errorf("protocol %q, target %q", r.Protocol, r.Target)
	}
	for _, p := range r.Phases[1:] {
		for _, g := range []*benchrun.Goodput{p.Up, p.Down} {
			if g != nil && g.Bytes <= 0 {
				t.Errorf("%s: goodput %+v, want bytes moved", p.Name, *g)
			}
		}
	}
	if up := r.Phases[1].Up; up == nil || up.CountedAt != benchrun.CountedHostSent {
		t.Errorf("upload %+v, want it counted as sent", up)
	}
	if strings.Contains(r.Verdict, "USB adapter") {
		t.Errorf("verdict %q blames the adapter for v3's idle line", r.Verdict)
	}

	out, _, err = run(t, NewRoot(), append(benchArgs, "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"protocol":"native"`) {
		t.Errorf("native report without its protocol: %s", out)
	}
}

// TestBenchEmulateCSV also runs without flow control, with bit errors.
func TestBenchEmulateCSV(t *testing.T) {
	out, _, err := run(t, NewRoot(), append(benchArgs, "--csv", "--flow", "none", "--ber", "1e-5")...)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if len(recs) != 5 || !slices.Equal(recs[0], benchCSVHeader) {
		t.Fatalf("want the header and 4 rows, got %q", recs)
	}
	col := func(name string) int { return slices.Index(benchCSVHeader, name) }
	for i, want := range []string{"echo", "up", "down", "both"} {
		row := recs[i+1]
		if row[col("phase")] != want {
			t.Errorf("row %d is phase %q, want %q", i+1, row[col("phase")], want)
		}
		for _, c := range []string{"host_crc_error_rate", "device_crc_error_rate", "host_retransmit_rate", "device_timeouts"} {
			if row[col(c)] == "" {
				t.Errorf("%s: no %s", want, c)
			}
		}
	}
	if recs[1][col("rtt_median_ms")] == "" || recs[1][col("up_line_share")] != "" {
		t.Errorf("echo row %q", recs[1])
	}
	if recs[2][col("up_line_share")] == "" || recs[2][col("down_line_share")] != "" {
		t.Errorf("up row %q", recs[2])
	}
	if recs[3][col("down_bytes_per_second")] == "" || recs[3][col("up_bytes_per_second")] != "" {
		t.Errorf("down row %q", recs[3])
	}
	if recs[4][col("up_line_share")] == "" || recs[4][col("down_line_share")] == "" || recs[4][col("rtt_count")] != "" {
		t.Errorf("both row %q", recs[4])
	}
}

// TestBenchPort measures an emulated ESP32 behind a real pty, through the
// serial code path a board takes.
func TestBenchPort(t *testing.T) {
	skipUnlessLinux(t)
	path := filepath.Join(t.TempDir(), "ttyESP32")
	p, err := uartemu.NewPTY(uartemu.Symmetric(uartemu.Line{Baud: 3000000, FlowControl: true}), path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dc := emulator.DefaultConfig()
	dc.Baud = 3000000
	dev, err := emulator.New(p.Device(), dc)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	// emulator.New publishes its session without the lock (see
	// internal/hostlink's tests): take it before any host exists.
	_ = dev.Session()

	out, _, err := run(t, NewRoot(), "bench", "--port", path, "--baud", "3000000", "--duration", "300ms", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r benchrun.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	checkBenchReport(t, r, false)
	if r.Target != path {
		t.Errorf("target %q, want %s", r.Target, path)
	}
	if up := r.Phases[1].Up; up == nil || up.CountedAt != benchrun.CountedHostSent {
		t.Errorf("upload %+v, want it counted as the host sent it", up)
	}
}

func TestBenchPortNoHello(t *testing.T) {
	skipUnlessLinux(t)
	defer func(d time.Duration) { benchHandshakeTimeout = d }(benchHandshakeTimeout)
	benchHandshakeTimeout = 300 * time.Millisecond
	path := filepath.Join(t.TempDir(), "ttyESP32")
	p, err := uartemu.NewPTY(uartemu.Symmetric(uartemu.Line{Baud: 3000000, FlowControl: true}), path)
	if err != nil { // nothing answers on the device's end
		t.Fatal(err)
	}
	defer p.Close()
	out, _, err := run(t, NewRoot(), "bench", "--port", path, "--baud", "3000000")
	want := "no HELLO from the device on " + path + ": is the proxy firmware running and the baud right?"
	var usage *UsageError
	if err == nil || err.Error() != want || errors.As(err, &usage) {
		t.Errorf("error %v, want %q (not a usage error)", err, want)
	}
	if out != "" {
		t.Errorf("printed %q", out)
	}
}

// TestBenchProgressOnTerminal runs bench with stderr on a terminal: a
// progress bar is drawn there, and the results still go to stdout.
func TestBenchProgressOnTerminal(t *testing.T) {
	skipUnlessLinux(t)
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	drawn := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(master) // ends when the slave is closed
		drawn <- string(b)
	}()
	root := NewRoot()
	var stdout strings.Builder
	root.SetOut(&stdout)
	root.SetErr(slave)
	root.SetArgs(append(benchArgs, "--log-level", "error"))
	err = root.ExecuteContext(t.Context())
	slave.Close()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-drawn:
		for _, w := range []string{"echo round trip", "host → device", "device → host", "both ways", "%"} {
			if !strings.Contains(s, w) {
				t.Errorf("progress on the terminal lacks %q: %q", w, s)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the terminal was not closed")
	}
	if !strings.Contains(stdout.String(), "verdict: ") {
		t.Errorf("stdout %q", stdout.String())
	}
}

func TestBenchFlags(t *testing.T) {
	notAFile := filepath.Join(t.TempDir(), "nothing-here")
	tests := []struct {
		name string
		args []string
		want string // in the message of a *UsageError
	}{
		{"neither", nil, "say what to measure: --port PATH for a board"},
		{"both", []string{"--emulate", "--port", notAFile}, "--port and --emulate exclude each other"},
		{"ber with port", []string{"--port", notAFile, "--ber", "1e-5"}, "--ber impairs the emulated line only: use it with --emulate"},
		{"zero drop with port", []string{"--port", notAFile, "--drop", "0"}, "--drop impairs the emulated line only"},
		{"burst rate with port", []string{"--port", notAFile, "--burst-rate", "0.1"}, "--burst-rate impairs the emulated line only"},
		{"ber 1", []string{"--emulate", "--ber", "1"}, "--ber 1: want a probability in [0, 1)"},
		{"negative ber", []string{"--emulate", "--ber", "-1e-5"}, "--ber -1e-05: want a probability"},
		{"ber NaN", []string{"--emulate", "--ber", "NaN"}, "--ber NaN: want a probability"},
		{"drop above 1", []string{"--emulate", "--drop", "1.5"}, "--drop 1.5: want a probability"},
		{"burst rate 1", []string{"--emulate", "--burst-rate", "1"}, "--burst-rate 1: want a probability"},
		{"zero duration", []string{"--emulate", "--duration", "0s"}, "--duration 0s: want a positive duration"},
		{"negative duration", []string{"--emulate", "--duration", "-1s"}, "--duration -1s: want a positive duration"},
		{"duration not a duration", []string{"--emulate", "--duration", "long"}, `invalid argument "long" for "--duration" flag`},
		{"zero baud", []string{"--emulate", "--baud", "0"}, "--baud 0: want a positive rate"},
		{"bad flow", []string{"--emulate", "--flow", "xonxoff"}, `invalid argument "xonxoff" for "--flow" flag: want a comma-separated list of rtscts, none`},
		{"json and csv", []string{"--emulate", "--json", "--csv"}, "--json and --csv exclude each other"},
		{"stray argument", []string{"--emulate", "extra"}, `"uartproxy bench" takes no arguments`},
		{"v3 with port", []string{"--protocol", "v3", "--port", notAFile}, "bench --protocol v3 needs --emulate: a v3 board has no test services"},
		{"v3 sweep", []string{"--protocol", "v3", "--emulate", "--sweep-baud", "921600,1400000"}, "--sweep-baud does not work with --protocol v3"},
		{"v3 flow sweep", []string{"--protocol", "v3", "--emulate", "--flow", "rtscts,none"}, "--flow rtscts,none measures a sweep, which --protocol v3 cannot do"},
		{"bad protocol", []string{"--emulate", "--protocol", "auto"}, `invalid argument "auto" for "--protocol" flag: want one of native, v3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := run(t, NewRoot(), append([]string{"bench"}, tt.args...)...)
			var usage *UsageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want a *UsageError saying %q", err, tt.want)
			}
			if out != "" {
				t.Errorf("printed %q on a usage error", out)
			}
		})
	}
	if _, err := os.Stat(notAFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was created on a usage error", notAFile)
	}
}

func TestBenchSweepEmulated(t *testing.T) {
	for _, format := range []string{"text", "json", "csv"} {
		args := []string{"bench", "--emulate", "--baud", "921600", "--duration", "200ms",
			"--sweep-baud", "921600,3000000", "--flow", "rtscts,none"}
		switch format { // the formats need no full sweep: one switch each
		case "json":
			args = append(args[:6], "--sweep-baud", "3000000", "--json")
		case "csv":
			args = append(args[:6], "--sweep-baud", "3000000", "--csv")
		}
		root := NewRoot()
		var out, errOut bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetArgs(args)
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("%s: %v\n%s", format, err, errOut.String())
		}
		got := out.String()
		switch format {
		case "text":
			if strings.Count(got, "\n3000000") != 2 || !strings.Contains(got, "recommended:") {
				t.Fatalf("text sweep:\n%s", got)
			}
		case "json":
			var sw benchrun.SweepReport
			if err := json.Unmarshal([]byte(got), &sw); err != nil || len(sw.Steps) != 1 || sw.Recommended == nil || sw.Restored.Baud != 921600 {
				t.Fatalf("json sweep: %v\n%s", err, got)
			}
		case "csv":
			if lines := strings.Split(strings.TrimSpace(got), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "baud,flow,") {
				t.Fatalf("csv sweep:\n%s", got)
			}
		}
	}
	for _, bad := range [][]string{
		{"bench", "--emulate", "--sweep-baud", "50"},
		{"bench", "--emulate", "--flow", "rtscts,maybe"},
	} {
		root := NewRoot()
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		root.SetArgs(bad)
		if err := root.ExecuteContext(context.Background()); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}

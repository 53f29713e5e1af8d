package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/slip"
)

var updateSniff = flag.Bool("update-sniff", false, "rewrite the golden outputs of sniff in testdata/captures")

// The capture recorded by internal/sniff's TestRecordSession, and what
// sniff prints for it.
var (
	sessionCapture = filepath.Join("..", "..", "testdata", "captures", "session.pcapng")
	sessionText    = filepath.Join("..", "..", "testdata", "captures", "session.txt")
	sessionJSON    = filepath.Join("..", "..", "testdata", "captures", "session.jsonl")
)

// golden compares got with the file, or rewrites it with -update-sniff.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *updateSniff {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("output differs from %s at line %d:\n got %q\nwant %q\n(run go test ./internal/cli -run Sniff -update-sniff if the change is right)", path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("output has %d lines, %s %d", len(gl), path, len(wl))
	}
}

func TestSniffGoldenText(t *testing.T) {
	out, _, err := run(t, NewRoot(), "sniff", sessionCapture)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, sessionText, out)
	for _, want := range []string{
		" H>D v4 HELLO ", " D>H v4 DATA seq=", "RETRANSMIT", "crc=bad REJECTED(crc)",
		"ACCEPT sid=2 listener=7", "DGRAM sid=5", "REQUEST id=1 op=info", "RESPONSE id=1 code=ok op=info result={\"firmware\": ",
		"CREDIT sid=", "FIN sid=1", "RESET sid=3 code=refused", "--- summary over ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// sniffJSON runs sniff with --json and returns the objects it printed.
func sniffJSON(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	out, _, err := run(t, NewRoot(), append([]string{"sniff", "--json"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return parseJSONLines(t, out)
}

func parseJSONLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for line := range strings.Lines(out) {
		var o map[string]any
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("%v in %q", err, line)
		}
		objs = append(objs, o)
	}
	return objs
}

func TestSniffGoldenJSON(t *testing.T) {
	out, _, err := run(t, NewRoot(), "sniff", "--json", sessionCapture)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, sessionJSON, out)
	objs := parseJSONLines(t, out)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o["kind"].(string)]++
	}
	if kinds["frame"] == 0 || kinds["rejected"] != 1 || kinds["summary"] != 1 || objs[len(objs)-1]["kind"] != "summary" {
		t.Errorf("kinds %v", kinds)
	}
	sum := objs[len(objs)-1]["dirs"].([]any)
	d2h := sum[1].(map[string]any)
	if d2h["dir"] != "d2h" || d2h["crc_errors"].(float64) != 1 || d2h["retransmits"].(float64) != 1 {
		t.Errorf("summary %v", d2h)
	}
}

func TestSniffFilters(t *testing.T) {
	count := func(args ...string) (events int, msgTypes map[string]int) {
		msgTypes = map[string]int{}
		for _, o := range sniffJSON(t, append(args, sessionCapture)...) {
			if o["kind"] == "summary" {
				continue
			}
			events++
			ms, _ := o["messages"].([]any)
			for _, m := range ms {
				msgTypes[m.(map[string]any)["type"].(string)]++
			}
		}
		return events, msgTypes
	}
	n, types := count("--type", "RESET")
	if n == 0 || len(types) != 1 || types["RESET"] == 0 {
		t.Errorf("--type RESET: %d events, messages %v", n, types)
	}
	n, types = count("--type", "hello,ACCEPT")
	if types["ACCEPT"] != 1 || len(types) != 1 || n < 5 {
		t.Errorf("--type hello,ACCEPT: %d events, messages %v", n, types)
	}
	n, types = count("--stream", "5")
	if n == 0 || types["DGRAM"] != 2 || types["OPEN"] != 1 || types["RESET"] != 1 || types["DATA"] != 0 {
		t.Errorf("--stream 5: %d events, messages %v", n, types)
	}
	objs := sniffJSON(t, "--errors", sessionCapture)
	if len(objs) != 2 || objs[0]["reason"] != "crc" || objs[0]["crc"] != "bad" {
		t.Errorf("--errors printed %v", objs)
	}
	objs = sniffJSON(t, "-q", "--stats-every", "100ms", sessionCapture)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o["kind"].(string))
	}
	if strings.Join(kinds, ",") != "stats,stats,summary" {
		t.Errorf("--stats-every 100ms -q printed %v", kinds)
	}
}

// lineBytes is a line with a bit of everything a sniffer must survive: a
// capture that starts inside a frame, native and seed frames, a damaged
// frame, a bad escape, garbage between frames, an over-long SLIP frame and
// a frame cut off at the end.
func lineBytes(t *testing.T) []byte {
	t.Helper()
	data, err := message.Append(nil, &message.Message{Type: message.TypeData, SID: 3, Data: []byte("GET / HTTP/1.1\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	bad := frame.Append(nil, frame.Header{Type: frame.Data, Seq: 8}, data)
	bad[12] ^= 0x04
	badEsc := slip.AppendEncode(nil, frame.Append(nil, frame.Header{Type: frame.Ack, Ack: 9}, nil))
	badEsc = append(badEsc[:len(badEsc)-1], slip.Esc, 'x', slip.End)
	ping := frame.AppendV3(nil, frame.V3Header{Type: frame.V3Req, Seq: 1}, []byte("\xa2\x62op\x64ping\x64args\xa0"))
	return bytes.Join([][]byte{
		[]byte("\x11\x22 tail"),
		slip.AppendEncode(nil, frame.Append(nil, frame.Header{Type: frame.Data, Seq: 7, Ack: 2}, data)),
		slip.AppendEncode(nil, bad),
		badEsc,
		[]byte("+++ATZ\r\n"),
		slip.AppendEncode(nil, ping),
		slip.AppendEncode(nil, frame.AppendV3(nil, frame.V3Header{Type: frame.V3Ack, Seq: 1}, nil)),
		append(append([]byte{slip.End}, bytes.Repeat([]byte{0x55}, frame.MaxFrameLen+1)...), slip.End),
		{slip.End, 0x04, 0x01},
	}, nil)
}

func TestSniffStdin(t *testing.T) {
	root := NewRoot()
	var out bytes.Buffer
	root.SetIn(bytes.NewReader(lineBytes(t)))
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"sniff", "-"})
	if err := root.ExecuteContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"          @0 ?   noise (partial) len=7 data=1122207461696c |.\" tail|",
		" ?   v4 DATA seq=7 ack=2 len=20 crc=ok\n" + eventIndent + "DATA sid=3 len=16 data=474554202f20485454502f312e310d0a |GET / HTTP/1.1..|\n",
		" ?   v4 DATA seq=8 ack=0 len=20 crc=bad REJECTED(crc)\n",
		" ?   v4 ACK ack=9 len=1 crc=bad REJECTED(crc) bad_escapes=1\n",
		" ?   noise (noise) len=8 data=2b2b2b41545a0d0a |+++ATZ..|\n",
		" ?   v3 REQ seq=1 len=15 crc=ok op=ping\n" + eventIndent + `{"op": "ping", "args": {}}`,
		" ?   v3 ACK seq=1 crc=ok\n",
		" ?   SLIP frame too long, discarded: wire_len=8209\n",
		" ?   noise (truncated) len=2 data=0401 |..|\n",
		"--- summary (no timestamps: no rates)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", got)
	}
	// The summary: 3 valid frames, 3 rejected, 2 CRC errors, resyncs for
	// the garbage and the over-long frame.
	objs := func() []map[string]any {
		root := NewRoot()
		var out bytes.Buffer
		root.SetIn(bytes.NewReader(lineBytes(t)))
		root.SetOut(&out)
		root.SetArgs([]string{"sniff", "--json", "-q", "--file", "-"})
		if err := root.ExecuteContext(t.Context()); err != nil {
			t.Fatal(err)
		}
		return parseJSONLines(t, out.String())
	}()
	d := objs[0]["dirs"].([]any)[0].(map[string]any)
	for k, want := range map[string]float64{"frames": 3, "rejected": 2, "crc_errors": 2, "resyncs": 2, "slip_too_long": 1, "bad_escapes": 1, "noise": 3, "bytes": float64(len(lineBytes(t)))} {
		if d[k] != want {
			t.Errorf("summary %s = %v, want %v", k, d[k], want)
		}
	}
}

// TestSniffPcapngRoundTrip writes the decoded frames to pcapng and reads
// them back: the events are the same, offsets aside.
func TestSniffPcapngRoundTrip(t *testing.T) {
	out := filepath.Join(t.TempDir(), "frames.pcapng")
	first := sniffJSON(t, "--pcapng", out, sessionCapture)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if r, err := capture.NewReader(f); err != nil || r.Format() != capture.FormatFrames {
		t.Fatalf("%s: %v", out, err)
	}
	second := sniffJSON(t, out)
	if len(first) != len(second) {
		t.Fatalf("%d objects from the line, %d from the frames", len(first), len(second))
	}
	for i := range first[:len(first)-1] {
		delete(first[i], "offset")
		a, _ := json.Marshal(first[i])
		b, _ := json.Marshal(second[i])
		if !bytes.Equal(a, b) {
			t.Errorf("event %d:\n%s\n%s", i, a, b)
		}
	}

	// Raw input keeps its noise, bad escapes and over-long frames.
	raw := filepath.Join(t.TempDir(), "line.bin")
	os.WriteFile(raw, lineBytes(t), 0o644)
	frames := filepath.Join(t.TempDir(), "line.pcapng")
	a := sniffJSON(t, "-q", "--pcapng", frames, raw)
	b := sniffJSON(t, "-q", frames)
	ad, bd := a[0]["dirs"].([]any)[0].(map[string]any), b[0]["dirs"].([]any)[0].(map[string]any)
	// (Resyncs and bad escapes differ: a frame capture does not say which
	// noise was cut off at the capture's edges, and holds frames unescaped.)
	for _, k := range []string{"frames", "rejected", "crc_errors", "noise", "noise_bytes", "slip_too_long"} {
		if ad[k] != bd[k] {
			t.Errorf("%s: %v from the line, %v from its frames", k, ad[k], bd[k])
		}
	}
}

// TestSniffTshark loads scripts/uartproxy.lua into tshark and checks that
// it reads the frames of sniff --pcapng as sniff does.
func TestSniffTshark(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark is not installed")
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "line.bin")
	os.WriteFile(raw, lineBytes(t), 0o644)
	for _, in := range []string{sessionCapture, raw} {
		out := filepath.Join(dir, filepath.Base(in)+".pcapng")
		objs := sniffJSON(t, "--pcapng", out, in)
		objs = objs[:len(objs)-1] // the summary
		cmd := exec.Command("tshark", "-X", "lua_script:"+filepath.Join("..", "..", "scripts", "uartproxy.lua"), "-r", out,
			"-T", "fields", "-E", "separator=;", "-e", "uartproxy.dir", "-e", "uartproxy.status", "-e", "uartproxy.version",
			"-e", "uartproxy.type", "-e", "uartproxy.v3.type", "-e", "uartproxy.seq", "-e", "uartproxy.v3.seq",
			"-e", "uartproxy.crc.status", "-e", "uartproxy.msg.type", "-e", "uartproxy.msg.sid", "-e", "uartproxy.v3.op",
			"-e", "_ws.expert.message")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, stderr.String())
		}
		if strings.Contains(stderr.String(), "Lua") || strings.Contains(stderr.String(), "rror") {
			t.Errorf("tshark: %s", stderr.String())
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(lines) != len(objs) {
			t.Fatalf("%s: tshark shows %d packets, sniff %d events", in, len(lines), len(objs))
		}
		for i, line := range lines {
			got := strings.Split(line, ";")
			want := tsharkFields(objs[i])
			if strings.Join(got[:11], ";") != strings.Join(want, ";") {
				t.Errorf("%s packet %d:\ntshark %q\nsniff  %q", in, i+1, got[:11], want)
			}
			if objs[i]["crc"] == "bad" && !strings.Contains(got[11], "CRC mismatch") {
				t.Errorf("%s packet %d: no expert info for the CRC: %q", in, i+1, got[11])
			}
		}
	}
}

// tsharkFields is what tshark should print for an event of sniff --json.
func tsharkFields(o map[string]any) []string {
	num := func(k string) string {
		if v, ok := o[k].(float64); ok {
			return strconv.Itoa(int(v))
		}
		return ""
	}
	dir := map[string]string{"h2d": "0", "d2h": "1", "unknown": "2"}[o["dir"].(string)]
	status := map[string]string{"frame": "0", "rejected": "0", "slip_too_long": "1", "noise": "2"}[o["kind"].(string)]
	f := []string{dir, status, "", "", "", "", "", "", "", "", ""}
	if status != "0" {
		return f
	}
	f[2] = num("version")
	typ, _ := o["type"].(string)
	switch f[2] {
	case "4":
		f[3] = map[string]string{"DATA": "1", "ACK": "2", "HELLO": "3"}[typ]
		if f[3] != "" || o["frame_len"].(float64) >= 14 {
			f[5] = num("seq")
			if f[5] == "" {
				f[5] = "0"
			}
		}
	case "3":
		f[4] = map[string]string{"REQ": "1", "RESP": "2", "ACK": "3"}[typ]
		f[6] = num("seq")
	}
	switch o["crc"] {
	case "ok":
		f[7] = "good"
	case "bad":
		f[7] = "bad"
	}
	var types, sids []string
	ms, _ := o["messages"].([]any)
	for _, m := range ms {
		m := m.(map[string]any)
		for n := message.TypeOpen; n <= message.TypeEvent; n++ {
			if n.String() == m["type"] {
				types = append(types, strconv.Itoa(int(n)))
			}
		}
		if sid, ok := m["sid"].(float64); ok {
			sids = append(sids, strconv.Itoa(int(sid)))
		}
	}
	f[8], f[9] = strings.Join(types, ","), strings.Join(sids, ",")
	if o["version"] == 3.0 && o["type"] == "REQ" {
		f[10], _ = o["op"].(string)
	}
	return f
}

// TestSniffPorts sniffs two tapped lines, each a pty whose master stands in
// for the wire, and stops like Ctrl-C does.
func TestSniffPorts(t *testing.T) {
	skipUnlessLinux(t)
	var masters []*os.File
	var paths []string
	for range 2 {
		m, s, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		defer s.Close()
		masters = append(masters, m)
		paths = append(paths, s.Name())
	}
	root := NewRoot()
	var out, errOut lockedBuffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"sniff", "--json", "--port", paths[0], "--port2", paths[1], "--stats-every", "50ms"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- root.ExecuteContext(ctx) }()
	waitFor(t, "sniff to open the ports", func() bool { return strings.Count(errOut.String(), `"message":"sniffing"`) == 2 })

	fin := func(sid uint32) []byte {
		p, _ := message.Append(nil, &message.Message{Type: message.TypeFin, SID: sid})
		return p
	}
	// Host→device on the first tap, the answer on the second, a frame
	// split across two writes, and noise.
	masters[0].Write(slip.AppendEncode(nil, frame.Append(nil, frame.Header{Type: frame.Data, Seq: 0}, fin(1))))
	time.Sleep(30 * time.Millisecond)
	ack := slip.AppendEncode(nil, frame.Append(nil, frame.Header{Type: frame.Ack, Ack: 1}, nil))
	masters[1].Write(ack[:5])
	time.Sleep(10 * time.Millisecond)
	masters[1].Write(ack[5:])
	time.Sleep(30 * time.Millisecond)
	masters[1].Write([]byte("zz\xc0"))
	waitFor(t, "three events", func() bool {
		return strings.Count(out.String(), `"kind":"frame"`)+strings.Count(out.String(), `"kind":"noise"`) == 3
	})
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("sniff returned %v after its context was cancelled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sniff did not stop when its context was cancelled")
	}

	var events []map[string]any
	var summary map[string]any
	stats := 0
	for _, o := range parseJSONLines(t, out.String()) {
		switch o["kind"] {
		case "summary":
			summary = o
		case "stats":
			stats++
		default:
			events = append(events, o)
		}
	}
	if len(events) != 3 {
		t.Fatalf("events %v", events)
	}
	for i, want := range []struct{ dir, kind, typ string }{{"h2d", "frame", "DATA"}, {"d2h", "frame", "ACK"}, {"d2h", "noise", ""}} {
		e := events[i]
		typ, _ := e["type"].(string)
		if e["dir"] != want.dir || e["kind"] != want.kind || typ != want.typ {
			t.Errorf("event %d: %v, want %+v", i, e, want)
		}
	}
	t1, _ := time.Parse(time.RFC3339Nano, events[0]["time"].(string))
	t2, _ := time.Parse(time.RFC3339Nano, events[1]["time"].(string))
	if !t2.After(t1) {
		t.Errorf("events out of time order: %v, %v", t1, t2)
	}
	if summary == nil || len(summary["dirs"].([]any)) != 2 || stats == 0 {
		t.Errorf("summary %v after %d stats", summary, stats)
	}
}

func TestSniffUsage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{nil, "say what to sniff"},
		{[]string{"--port", "/dev/null", "--file", "x"}, "say what to sniff"},
		{[]string{"--file", "a", "b"}, "either as --file or as an argument"},
		{[]string{"a", "b"}, "accepts at most 1 arg"},
		{[]string{"--port", "/dev/ttyUSB0", "--port2", "/dev/ttyUSB0"}, "tap each direction with its own adapter"},
		{[]string{"x", "--type", "bogus"}, "--type bogus: want one of HELLO, DATA"},
		{[]string{"x", "--stats-every", "-1s"}, "--stats-every -1s"},
		{[]string{"x", "--baud", "0"}, "--baud 0"},
		{[]string{"x", "--stream", "-1"}, `invalid argument "-1" for "--stream"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := run(t, NewRoot(), append([]string{"sniff"}, tt.args...)...)
			var usage *UsageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want a *UsageError saying %q", err, tt.want)
			}
		})
	}

	// Not usage errors: files that are missing or not ours.
	if _, _, err := run(t, NewRoot(), "sniff", filepath.Join(dir, "missing")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	eth := filepath.Join(dir, "eth.pcapng")
	ef, _ := os.Create(eth)
	w, _ := capture.NewWriter(ef, capture.LinkTypeRaw)
	w.Flush()
	ef.Close()
	b, _ := os.ReadFile(eth)
	b[bytes.Index(b, []byte{0x94, 0, 0, 0})] = 1 // link type 148 → 1
	os.WriteFile(eth, b, 0o644)
	if _, _, err := run(t, NewRoot(), "sniff", eth); err == nil || !strings.Contains(err.Error(), "link type 1") {
		t.Errorf("ethernet capture: %v", err)
	}
	if _, _, err := run(t, NewRoot(), "sniff", "--pcapng", filepath.Join(dir, "no", "such", "dir.pcapng"), sessionCapture); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--pcapng into a missing directory: %v", err)
	}
	// A truncated capture: the events before the cut, the summary, then
	// the error.
	cut := filepath.Join(dir, "cut.pcapng")
	whole, _ := os.ReadFile(sessionCapture)
	os.WriteFile(cut, whole[:len(whole)/2], 0o644)
	out, _, err := run(t, NewRoot(), "sniff", cut)
	if err == nil || !strings.Contains(err.Error(), "unexpected EOF") || !strings.Contains(out, "--- summary") {
		t.Errorf("truncated capture: %v, output ends %q", err, out[max(0, len(out)-200):])
	}
}

// TestSniffHelp keeps the examples in the help honest.
func TestSniffHelp(t *testing.T) {
	out, _, err := run(t, NewRoot(), "sniff", "--help")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	n := 0
	for sc.Scan() {
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "uartproxy sniff") {
			n++
		}
	}
	if n < 4 {
		t.Errorf("help shows %d examples:\n%s", n, out)
	}

}

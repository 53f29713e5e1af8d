package sniff_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/emulator"
	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/mux"
	"github.com/uartproxy/uartproxy/internal/sniff"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

var update = flag.Bool("update", false, "record a new testdata/captures/session.pcapng")

// sessionCapture is the committed capture that the CLI's golden tests and
// docs/sniff.md show.
var sessionCapture = filepath.Join("..", "..", "testdata", "captures", "session.pcapng")

// wantFrames and wantMessages are what a recorded session must show.
var (
	wantFrames   = []string{"HELLO", "DATA", "ACK"}
	wantMessages = []string{"OPEN", "OPEN_OK", "RESET", "DATA", "FIN", "CREDIT", "DGRAM", "ACCEPT", "REQUEST", "RESPONSE"}
)

// TestRecordSession records a real session from the host's side of an
// emulated cable, through capture.NewTap, and checks that sniff finds in it
// every frame type, every message type the emulated device can produce, CRC
// errors and retransmissions (the device→host line flips bits). With
// -update it replaces the committed capture.
func TestRecordSession(t *testing.T) {
	if testing.Short() {
		t.Skip("records a live session")
	}
	var buf bytes.Buffer
	recordSession(t, &buf)
	checkSession(t, buf.Bytes())
	if *update {
		if err := os.WriteFile(sessionCapture, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", sessionCapture, buf.Len())
	}
}

// TestCommittedCapture checks the committed capture the same way.
func TestCommittedCapture(t *testing.T) {
	b, err := os.ReadFile(sessionCapture)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 200<<10 {
		t.Errorf("%s is %d bytes; keep it under 200 KB", sessionCapture, len(b))
	}
	checkSession(t, b)
}

// checkSession decodes a capture and checks what a recorded session shows.
func checkSession(t *testing.T, b []byte) {
	t.Helper()
	r, err := capture.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != capture.FormatRaw {
		t.Fatalf("format %v", r.Format())
	}
	reqs := sniff.NewRequests()
	decs := [3]*sniff.Decoder{}
	for d := range decs {
		decs[d] = sniff.NewDecoder(capture.Direction(d), reqs)
	}
	var st sniff.Stats
	frames, msgs := map[string]int{}, map[string]int{}
	var last time.Time
	emit := func(ev *sniff.Event) {
		st.Add(ev)
		if ev.Kind == sniff.KindFrame {
			frames[ev.Type]++
		}
		for _, m := range ev.Messages {
			msgs[m.Type]++
			if m.Err != "" {
				t.Errorf("malformed message in a valid frame: %+v", m)
			}
		}
		if ev.Kind == sniff.KindFrame && ev.PayloadErr != "" {
			t.Errorf("valid frame with a payload error: %+v", ev)
		}
	}
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Time.Before(last) {
			t.Errorf("record at %v after %v", rec.Time, last)
		}
		last = rec.Time
		st.AddBytes(rec.Dir, rec.Time, len(rec.Data))
		decs[rec.Dir].Feed(rec.Time, rec.Data, emit)
	}
	for _, d := range decs {
		d.Flush(last, emit)
	}
	for _, f := range wantFrames {
		if frames[f] == 0 {
			t.Errorf("no %s frame; frames %v", f, frames)
		}
	}
	for _, m := range wantMessages {
		if msgs[m] == 0 {
			t.Errorf("no %s message; messages %v", m, msgs)
		}
	}
	h2d, d2h := st.Dir[capture.HostToDevice], st.Dir[capture.DeviceToHost]
	if d2h.CRCErrors == 0 || d2h.Retransmits == 0 {
		t.Errorf("device→host: %d CRC errors, %d retransmissions; want some of each", d2h.CRCErrors, d2h.Retransmits)
	}
	if h2d.Rejected != 0 || h2d.Noise != 0 || h2d.CRCErrors != 0 {
		t.Errorf("host→device was clean, yet %+v", h2d)
	}
	if st.Dir[capture.Unknown] != (sniff.DirStats{}) {
		t.Errorf("records without direction: %+v", st.Dir[capture.Unknown])
	}
	t.Logf("frames %v, messages %v", frames, msgs)
	t.Logf("h2d %+v", h2d)
	t.Logf("d2h %+v", d2h)
}

// recordSession runs a session that uses every message type the emulated
// device can produce, recording the host's port into w.
func recordSession(t *testing.T, w io.Writer) {
	const baud = 921600
	line := uartemu.Config{
		HostToDevice: uartemu.Line{Baud: baud, FlowControl: true, TxBuffer: 512},
		// Enough bit errors for a few damaged frames and retransmissions.
		DeviceToHost: uartemu.Line{Baud: baud, FlowControl: true, TxBuffer: 512, BER: 2e-5, Seed: 3},
	}
	hp, dp := uartemu.New(line)
	dc := emulator.DefaultConfig()
	dc.Baud = baud
	dev, err := emulator.New(dp, dc)
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	defer dev.Close()

	cw, err := capture.NewWriter(w, capture.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	// A small host window, so the host returns CREDIT within a few KiB.
	const window = 4096
	mc := mux.DefaultConfig()
	mc.StreamWindow = window
	host := mux.New(mc)
	lc := link.DefaultConfig()
	lc.Hello.MaxStreams = uint(mc.MaxStreams)
	lc.Hello.StreamWindow = window
	lc.Hello.Baud = baud
	hl, err := link.New(capture.NewTap(hp, cw).(io.ReadWriteCloser), lc, host)
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	defer host.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := host.WaitUp(ctx); err != nil {
		t.Fatal(err)
	}

	// Requests: INFO, RESOLVE, ECHO.
	if _, err := host.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if addrs, err := host.Resolve(ctx, "localhost", 4); err != nil || len(addrs) == 0 {
		t.Fatalf("resolve: %v %v", addrs, err)
	}
	if got, err := host.Echo(ctx, []byte("ping \xc0\xdb")); err != nil || string(got) != "ping \xc0\xdb" {
		t.Fatalf("echo: %q %v", got, err)
	}

	// TCP: OPEN, OPEN_OK, DATA both ways, CREDIT both ways, FIN both ways.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		got, _ := io.ReadAll(c)
		c.Write(bytes.ToUpper(got))
	}()
	c, err := host.Dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	req := bytes.Repeat([]byte("GET /index.html HTTP/1.0\r\n"), 120) // over the device's window/4
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, bytes.ToUpper(req)) {
		t.Fatalf("tcp: %d bytes back, %v", len(got), err)
	}
	c.Close()

	// A refused connection: RESET from the device.
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	if _, err := host.Dial(ctx, "tcp", addr); mux.CodeOf(err) != message.CodeRefused {
		t.Fatalf("dial a closed port: %v", err)
	}

	// UDP: OPEN kind udp, DGRAM both ways, RESET 0 to close.
	us, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer us.Close()
	go func() {
		b := make([]byte, 1500)
		n, from, err := us.ReadFrom(b)
		if err == nil {
			us.WriteTo(append([]byte("re: "), b[:n]...), from)
		}
	}()
	pc, err := host.ListenPacket(ctx, "udp", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.WriteTo([]byte("dns-ish query"), us.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 1500)
	n, _, err := pc.ReadFrom(b)
	if err != nil || string(b[:n]) != "re: dns-ish query" {
		t.Fatalf("udp: %q %v", b[:n], err)
	}
	pc.Close()

	// A device listener: OPEN kind listen, ACCEPT, the host's OPEN_OK.
	dl, err := host.Listen(ctx, "tcp", "127.0.0.1:0", 4)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := net.Dial("tcp", dl.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("hello from outside"))
		io.Copy(io.Discard, c)
	}()
	ac, err := dl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ac.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.ReadFull(ac, b[:18]); err != nil || string(b[:n]) != "hello from outside" {
		t.Fatalf("accepted: %q %v", b[:n], err)
	}
	ac.Write([]byte("bye"))
	ac.Close()
	dl.Close()

	// Bulk echo until the noisy device→host line has cost a retransmission.
	data := make([]byte, 3000)
	for i := range data {
		data[i] = message.SourceByte(uint64(i))
	}
	for round := 0; ; round++ {
		if s := dev.Link().Stats(); s.Retransmits > 0 && hl.Stats().Dropped["crc"] > 0 {
			break
		}
		if round == 30 {
			t.Fatalf("no retransmission after %d echo rounds: host %+v, device %+v", round, hl.Stats(), dev.Link().Stats())
		}
		echoStream(t, ctx, host, data)
	}
	// Let the last acknowledgements cross, then stop.
	time.Sleep(50 * time.Millisecond)
	host.Close()
	hl.Close()
	if err := cw.Flush(); err != nil {
		t.Fatal(err)
	}
}

// echoStream sends data through the device's echo service and checks it
// comes back.
func echoStream(t *testing.T, ctx context.Context, host *mux.Session, data []byte) {
	st, err := host.OpenService(ctx, message.ServiceEcho)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	go func() {
		st.Write(data)
		st.CloseWrite()
	}()
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(st)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo: %d of %d bytes, %v", len(got), len(data), err)
	}
}

// TestTypeNamesCoverSession keeps the CLI's --type list in step with what
// sessions show.
func TestTypeNamesCoverSession(t *testing.T) {
	names := sniff.TypeNames()
	for _, n := range append(wantFrames, wantMessages...) {
		if !slices.Contains(names, n) {
			t.Errorf("TypeNames lacks %s", n)
		}
	}
	if !strings.Contains(strings.Join(names, ","), "EVENT") {
		t.Error("TypeNames lacks EVENT")
	}
}

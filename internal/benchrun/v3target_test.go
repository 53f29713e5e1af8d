package benchrun

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

func newV3(t *testing.T) *V3Target {
	t.Helper()
	tg, err := NewV3Target(V3Options{Line: uartemu.Line{Baud: baud, FlowControl: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tg.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return tg
}

// TestV3TargetServices checks each piece of the v3 target by hand: ping
// echo, and the three services reached through the emulated board.
func TestV3TargetServices(t *testing.T) {
	tg := newV3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	req := []byte("\x00\xffhello\xc0\xdb")
	got, err := tg.Echo(ctx, req)
	if err != nil || !bytes.Equal(got, req) {
		t.Fatalf("Echo = %q, %v; want %q", got, err, req)
	}

	echo, err := tg.OpenService(ctx, message.ServiceEcho)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	echo.SetDeadline(time.Now().Add(5 * time.Second))
	msg := bytes.Repeat([]byte("v3 "), 1000)
	if _, err := echo.Write(msg); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, len(msg))
	if _, err := io.ReadFull(echo, back); err != nil || !bytes.Equal(back, msg) {
		t.Fatalf("echo service: %v, equal %v", err, bytes.Equal(back, msg))
	}

	src, err := tg.OpenService(ctx, message.ServiceSource)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	src.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 3*v3SourceChunk+17) // crosses chunk boundaries
	if _, err := io.ReadFull(src, buf); err != nil {
		t.Fatal(err)
	}
	if i := mismatch(buf, bytes.Repeat(sourcePattern()[:251], len(buf)/251+1)[:len(buf)]); i >= 0 {
		t.Fatalf("source differs from the pattern at offset %d", i)
	}

	sent := tg.BytesSent()
	dis, err := tg.OpenService(ctx, message.ServiceDiscard)
	if err != nil {
		t.Fatal(err)
	}
	defer dis.Close()
	if _, err := dis.Write(make([]byte, 20000)); err != nil {
		t.Fatal(err)
	}
	for tg.BytesSent() < sent+20000 {
		if ctx.Err() != nil {
			t.Fatalf("BytesSent %d, want %d more than %d", tg.BytesSent(), 20000, sent)
		}
		time.Sleep(5 * time.Millisecond)
	}

	if _, err := tg.OpenService(ctx, "chargen"); err == nil {
		t.Error("opened a service that does not exist")
	}
	ls := tg.LinkStats()
	if ls.TxFrames == 0 || ls.RxFrames == 0 || ls.TxData == 0 || !ls.Established || ls.Window != 1 {
		t.Errorf("link stats %+v", ls)
	}
}

// TestV3TargetRun runs the whole plan against the v3 emulator.
func TestV3TargetRun(t *testing.T) {
	tg := newV3(t)
	rep, err := Run(context.Background(), tg, Options{Duration: 200 * time.Millisecond, Warmup: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeviceCounters || len(rep.Phases) != 4 {
		t.Fatalf("report %+v", rep)
	}
	if up := rep.Phase(PhaseUp).Up; up == nil || up.Bytes <= 0 || up.CountedAt != CountedHostSent {
		t.Errorf("upload %+v", up)
	}
	if down := rep.Phase(PhaseDown).Down; down == nil || down.Bytes <= 0 || down.Verified <= 0 {
		t.Errorf("download %+v", down)
	}
	if rtt := rep.Phase(PhaseEcho).RTT; rtt == nil || rtt.Count == 0 {
		t.Errorf("echo %+v", rtt)
	}
}

package benchrun

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/testbed"
)

func TestSweep(t *testing.T) {
	bed, err := testbed.New(testbed.Clean(921600))
	if err != nil {
		t.Fatal(err)
	}
	defer bed.Close()
	steps := []Step{
		{Baud: 921600, Flow: true},
		{Baud: 3000000, Flow: true},
		{Baud: 50, Flow: true}, // the device refuses it
		{Baud: 3000000, Flow: false},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Sweep(ctx, BedTarget(bed), steps, Options{Duration: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Steps) != len(steps) {
		t.Fatalf("%d steps reported", len(rep.Steps))
	}
	for i, s := range rep.Steps {
		refused := s.Baud == 50
		if refused != (s.Report == nil) || refused != (s.Error != "") {
			t.Fatalf("step %d (%v): report %v error %q", i, s.Step, s.Report != nil, s.Error)
		}
		if s.Report != nil && (s.Report.Baud != s.Baud || goodputOf(s.Report) <= 0) {
			t.Fatalf("step %d measured at %d baud, goodput %v", i, s.Report.Baud, goodputOf(s.Report))
		}
	}
	// Faster is better on a clean line, and RTS/CTS when as fast.
	if rep.Recommended == nil || *rep.Recommended != (Step{Baud: 3000000, Flow: true}) {
		t.Fatalf("recommended %v (%s)", rep.Recommended, rep.Why)
	}
	// The line is back where it started, on both ends.
	if rep.Restored != (Step{Baud: 921600, Flow: true}) || bed.HostPort.Baud() != 921600 || bed.DevicePort.Baud() != 921600 ||
		!bed.HostPort.FlowControl() || !bed.DevicePort.FlowControl() {
		t.Fatalf("restored %v; host %d device %d", rep.Restored, bed.HostPort.Baud(), bed.DevicePort.Baud())
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
	t.Log(rep.Why)
}

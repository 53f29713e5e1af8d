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
	// Faster is better on a clean line. (Which flow setting wins at 3M
	// depends on timing; the tie-break has its own test.)
	if rep.Recommended == nil || rep.Recommended.Baud != 3000000 {
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

func TestRecommendPrefersRTSCTSWhenAsFast(t *testing.T) {
	report := func(up, down float64) *Report {
		return &Report{Phases: []Phase{
			{Name: PhaseUp, Up: &Goodput{BytesPerSecond: up}},
			{Name: PhaseDown, Down: &Goodput{BytesPerSecond: down}},
		}}
	}
	crc := func(r *Report) *Report { r.Phases[0].Host.CRCErrors = 3; return r }
	cases := []struct {
		name  string
		steps []StepResult
		want  Step
	}{
		{"as fast: RTS/CTS", []StepResult{
			{Step: Step{3000000, false}, Report: report(295000, 294000)},
			{Step: Step{3000000, true}, Report: report(293000, 293500)},
		}, Step{3000000, true}},
		{"clearly faster wins", []StepResult{
			{Step: Step{921600, true}, Report: report(90000, 90000)},
			{Step: Step{3000000, false}, Report: report(290000, 290000)},
		}, Step{3000000, false}},
		{"slower one direction counts", []StepResult{
			{Step: Step{1500000, true}, Report: report(147000, 147000)},
			{Step: Step{3000000, true}, Report: report(290000, 100000)},
		}, Step{1500000, true}},
		{"clean beats faster with errors", []StepResult{
			{Step: Step{3000000, true}, Report: crc(report(290000, 290000))},
			{Step: Step{921600, true}, Report: report(90000, 90000)},
		}, Step{921600, true}},
		{"all with errors: fastest", []StepResult{
			{Step: Step{3000000, true}, Report: crc(report(290000, 290000))},
			{Step: Step{921600, true}, Report: crc(report(90000, 90000))},
		}, Step{3000000, true}},
	}
	for _, c := range cases {
		rep := SweepReport{Steps: c.steps}
		recommend(&rep)
		if rep.Recommended == nil || *rep.Recommended != c.want {
			t.Errorf("%s: recommended %v, want %v (%s)", c.name, rep.Recommended, c.want, rep.Why)
		}
	}
	rep := SweepReport{Steps: []StepResult{{Step: Step{460800, true}, Error: "refused"}}}
	recommend(&rep)
	if rep.Recommended != nil || rep.Why == "" {
		t.Errorf("nothing worked: %v %q", rep.Recommended, rep.Why)
	}
}

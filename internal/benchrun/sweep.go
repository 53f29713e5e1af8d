package benchrun

import (
	"context"
	"fmt"
	"time"
)

// Switcher is a Target whose line can move to another baud rate and flow
// control without ending the session (docs/protocol.md §5.7).
type Switcher interface {
	Target
	FlowControl() bool
	// SwitchLine asks the device to move, moves the local UART, confirms,
	// and falls back to the old setting on both ends if the new one fails.
	SwitchLine(ctx context.Context, baud int, flow bool) error
}

// Step is one line setting of a sweep.
type Step struct {
	Baud int  `json:"baud"`
	Flow bool `json:"rtscts"`
}

func (s Step) String() string {
	if s.Flow {
		return fmt.Sprintf("%d baud, RTS/CTS", s.Baud)
	}
	return fmt.Sprintf("%d baud, no flow control", s.Baud)
}

// StepResult is what one step of a sweep gave.
type StepResult struct {
	Step
	// Error says why the step was not measured: the device refused the
	// setting, or it did not work and both ends fell back.
	Error  string  `json:"error,omitempty"`
	Report *Report `json:"report,omitempty"`
}

// SweepReport is the result of Sweep.
type SweepReport struct {
	Steps []StepResult `json:"steps"`
	// Recommended is the fastest setting that worked without CRC errors,
	// or failing that the fastest that worked; nil if none did.
	Recommended *Step  `json:"recommended,omitempty"`
	Why         string `json:"why"`
	// Restored is the setting the line was left at: the one it had.
	Restored Step `json:"restored"`
}

// Sweep measures the link at each step in turn (Run with o for each),
// switching the line between them, then puts the line back where it was.
// progress gets the step as its phase prefix.
func Sweep(ctx context.Context, t Switcher, steps []Step, o Options, progress func(phase string, done, total time.Duration)) (SweepReport, error) {
	start := Step{Baud: t.Baud(), Flow: t.FlowControl()}
	rep := SweepReport{Restored: start}
	current := start
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		res := StepResult{Step: s}
		if s != current {
			waitQuiet(ctx, t)
			if err := t.SwitchLine(ctx, s.Baud, s.Flow); err != nil {
				res.Error = err.Error()
				rep.Steps = append(rep.Steps, res)
				continue
			}
			current = s
		}
		so := o
		so.Flow = flowName(s.Flow)
		r, err := Run(ctx, t, so, func(phase string, done, total time.Duration) {
			if progress != nil {
				progress(fmt.Sprintf("%d %s %s", s.Baud, flowName(s.Flow), phase), done, total)
			}
		})
		if err != nil {
			res.Error = err.Error()
		} else {
			res.Report = &r
		}
		rep.Steps = append(rep.Steps, res)
	}
	if current != start {
		waitQuiet(ctx, t)
		if err := t.SwitchLine(ctx, start.Baud, start.Flow); err != nil {
			rep.Restored = current
			rep.Why = "could not restore the starting setting: " + err.Error()
		}
	}
	recommend(&rep)
	return rep, nil
}

// waitQuiet waits (up to 5 s) until the link carries no DATA either way
// for two full frame times: what the last phase left in flight has
// drained, so nothing crosses the switch (docs/protocol.md §5.7).
func waitQuiet(ctx context.Context, t Target) {
	frame := time.Duration(float64(max(t.LinkStats().MaxPayload, 256)+32) * 10.5 / float64(max(t.Baud(), 1)) * float64(time.Second))
	quiet := 2*frame + 20*time.Millisecond
	deadline := time.Now().Add(5 * time.Second)
	last := t.LinkStats()
	since := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(quiet / 4)
		st := t.LinkStats()
		if st.RxData != last.RxData || st.TxData != last.TxData || st.InFlight > 0 {
			last, since = st, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return
		}
	}
}

func flowName(on bool) string {
	if on {
		return "rtscts"
	}
	return "none"
}

// goodputOf is a step's figure of merit: the slower direction of the
// one-way phases, in bytes per second.
func goodputOf(r *Report) float64 {
	up, down := r.Phase(PhaseUp), r.Phase(PhaseDown)
	if up == nil || down == nil || up.Up == nil || down.Down == nil {
		return 0
	}
	return min(up.Up.BytesPerSecond, down.Down.BytesPerSecond)
}

func crcErrors(r *Report) uint64 {
	var n uint64
	for _, p := range r.Phases {
		n += p.Host.CRCErrors
		if p.Device != nil {
			n += p.Device.CRCErrors
		}
	}
	return n
}

// better reports whether a beats b: clearly faster (by more than 1 %), or
// as fast and with RTS/CTS where b has none (a receiver that falls behind
// then loses nothing), or as fast at a higher rate.
func better(a, b *StepResult) bool {
	ga, gb := goodputOf(a.Report), goodputOf(b.Report)
	switch {
	case ga > gb*1.01:
		return true
	case gb > ga*1.01:
		return false
	case a.Flow != b.Flow:
		return a.Flow
	}
	return a.Baud > b.Baud
}

// recommend picks the best clean step, else the best that worked.
func recommend(rep *SweepReport) {
	var best, bestClean *StepResult
	for i := range rep.Steps {
		s := &rep.Steps[i]
		if s.Report == nil {
			continue
		}
		if best == nil || better(s, best) {
			best = s
		}
		if crcErrors(s.Report) == 0 && (bestClean == nil || better(s, bestClean)) {
			bestClean = s
		}
	}
	pick, why := bestClean, "fastest setting without CRC errors (RTS/CTS preferred when as fast)"
	if pick == nil {
		pick, why = best, "fastest setting that worked; every one had CRC errors: check wiring, ground and cable length"
	}
	if pick == nil {
		if rep.Why == "" {
			rep.Why = "no setting worked"
		}
		return
	}
	st := pick.Step
	rep.Recommended = &st
	msg := fmt.Sprintf("%s: %s, %.0f B/s each way at least", st, why, goodputOf(pick.Report))
	if rep.Why != "" {
		msg += "; " + rep.Why
	}
	rep.Why = msg
}

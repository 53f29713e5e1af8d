package cli

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/uartproxy/uartproxy/internal/benchrun"
	"github.com/uartproxy/uartproxy/internal/config"
	"github.com/uartproxy/uartproxy/internal/emulator"
	"github.com/uartproxy/uartproxy/internal/hostlink"
	"github.com/uartproxy/uartproxy/internal/serialport"
	"github.com/uartproxy/uartproxy/internal/testbed"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

// benchHandshakeTimeout is how long bench waits for the device's HELLO on
// a serial port; a variable so the tests need not wait as long.
var benchHandshakeTimeout = 5 * time.Second

// benchFlags are the flags of 'uartproxy bench'.
type benchFlags struct {
	serial    serialFlags
	Emulate   bool
	Duration  time.Duration
	CSV       bool
	BER       float64
	Drop      float64
	BurstRate float64
	SweepBaud []int
	Protocol  string
}

func (f *benchFlags) addTo(cmd *cobra.Command) {
	f.serial.FlowList = true
	f.serial.AddTo(cmd)
	fs := cmd.Flags()
	fs.BoolVar(&f.Emulate, "emulate", false, "measure an emulated ESP32 in this process instead of a board on --port")
	fs.DurationVar(&f.Duration, "duration", benchrun.DefaultDuration, "measuring window of each phase (after a short warm-up)")
	fs.BoolVar(&f.CSV, "csv", false, "print one CSV row per phase, with a header")
	fs.Float64Var(&f.BER, "ber", 0, "with --emulate: bit error rate of the line, e.g. 1e-5")
	fs.Float64Var(&f.Drop, "drop", 0, "with --emulate: probability that each byte is lost on the wire")
	fs.Float64Var(&f.BurstRate, "burst-rate", 0, "with --emulate: probability per byte that an error burst starts")
	addEnum(cmd, fs, &f.Protocol, "protocol", config.ProtocolNative, "what the device runs: uartproxy's firmware (native) or the seed's original v3 firmware (v3, with --emulate only), to see what switching gains",
		config.ProtocolNative, config.ProtocolV3)
	fs.IntSliceVar(&f.SweepBaud, "sweep-baud", nil, "measure at each of these rates in turn (with each --flow), switching both ends safely, e.g. 115200,460800,921600,1500000,3000000")
}

// sweeping reports whether the run measures more than one line setting.
func (f *benchFlags) sweeping() bool { return len(f.SweepBaud) > 0 || len(f.serial.Flows) > 1 }

// sweepSteps is every baud × flow combination, flow by flow.
func (f *benchFlags) sweepSteps() []benchrun.Step {
	bauds := f.SweepBaud
	if len(bauds) == 0 {
		bauds = []int{f.serial.Baud}
	}
	var steps []benchrun.Step
	for _, fl := range f.serial.Flows {
		for _, b := range bauds {
			steps = append(steps, benchrun.Step{Baud: b, Flow: fl == flowRTSCTS})
		}
	}
	return steps
}

// Validate checks what flag parsing cannot; cmd tells which flags were
// given.
func (f *benchFlags) Validate(cmd *cobra.Command) error {
	switch {
	case f.serial.Port == "" && !f.Emulate:
		return usageErrorf("say what to measure: --port PATH for a board (see 'uartproxy ports'), or --emulate for an emulated ESP32")
	case f.serial.Port != "" && f.Emulate:
		return usageErrorf("--port and --emulate exclude each other: measure a board or the emulator, not both")
	case f.Protocol == config.ProtocolV3 && !f.Emulate:
		return usageErrorf("bench --protocol v3 needs --emulate: a v3 board has no test services, so bench would need a host it can reach; use serve --protocol v3 with real traffic instead")
	case f.Protocol == config.ProtocolV3 && len(f.SweepBaud) > 0:
		return usageErrorf("--sweep-baud does not work with --protocol v3: the seed's v3 firmware cannot switch its baud rate; run bench once per --baud instead")
	case f.Protocol == config.ProtocolV3 && len(f.serial.Flows) > 1:
		return usageErrorf("--flow %s measures a sweep, which --protocol v3 cannot do: give one --flow", strings.Join(f.serial.Flows, ","))
	}
	if err := f.serial.Validate(); err != nil {
		return err
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"ber", f.BER}, {"drop", f.Drop}, {"burst-rate", f.BurstRate}} {
		if cmd.Flags().Changed(p.name) && !f.Emulate {
			return usageErrorf("--%s impairs the emulated line only: use it with --emulate", p.name)
		}
		if !(p.v >= 0 && p.v < 1) { // also catches NaN
			return usageErrorf("--%s %v: want a probability in [0, 1), e.g. 1e-5", p.name, p.v)
		}
	}
	if f.Duration <= 0 {
		return usageErrorf("--duration %v: want a positive duration, e.g. 3s", f.Duration)
	}
	for _, b := range f.SweepBaud {
		if b < 9600 || b > 5000000 {
			return usageErrorf("--sweep-baud %d: want rates between 9600 and 5000000 bit/s", b)
		}
	}
	if asJSON, _ := cmd.Flags().GetBool(flagJSON); asJSON && f.CSV {
		return usageErrorf("--json and --csv exclude each other")
	}
	return nil
}

func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench (--port PATH | --emulate [--protocol v3])",
		Short: "Measure the link: round trip, goodput each way, errors",
		Long: `Measure the link to a device with its test endpoints (no Wi-Fi needed),
one phase after the other, each for --duration after a short warm-up:

  echo  the round trip of ECHO requests on an idle link
  up    goodput host → device, streaming into the device's "discard"
  down  goodput device → host from its "source", every byte checked
  both  up and down at once

Goodput is shown as a share of the line's ceiling, baud/10 bytes per
second; the protocol reaches about 98 % of it on a clean line. With each
phase come the CRC error rate (frames that failed their CRC ÷ frames
received), the retransmission rate (DATA frames resent ÷ DATA frames sent)
and the retransmission timeouts, of the host's link and, with --emulate,
the device's.

--emulate measures an emulated ESP32 in this process over an emulated line
paced at --baud, which --ber, --drop and --burst-rate can impair; --port
measures a board running the uartproxy firmware.

--protocol v3 --emulate measures an emulated board running the seed's
original v3 firmware instead, on the same emulated line, to show what
switching firmware gains. A v3 board has no test endpoints: bench runs
"echo", "discard" and "source" on 127.0.0.1 and reaches them through the
board, and ECHO is a v3 ping carrying the payload.`,
		Example: `  uartproxy bench --port /dev/ttyUSB0 --baud 921600
  uartproxy bench --emulate --baud 921600 --ber 1e-5
  uartproxy bench --emulate --flow none --duration 10s --csv > bench.csv
  uartproxy bench --emulate --protocol v3 --baud 1400000`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.Validate(cmd); err != nil {
				return err
			}
			return runBench(cmd, &f)
		},
	}
	f.addTo(cmd)
	return cmd
}

func runBench(cmd *cobra.Command, f *benchFlags) error {
	log := loggerFor(cmd)
	ctx := cmd.Context()
	o := benchrun.Options{Duration: f.Duration, Flow: f.serial.Flow}
	var target benchrun.Target
	switch {
	case f.Protocol == config.ProtocolV3:
		v3, err := benchrun.NewV3Target(benchrun.V3Options{Line: f.emulatedLine(), Logger: log})
		if err != nil {
			return fmt.Errorf("start the emulated v3 board: %w", err)
		}
		defer v3.Close()
		target, o.Target = v3, f.emulatedName()
	case f.Emulate:
		bed, err := testbed.New(f.bedOptions(log))
		if err != nil {
			return fmt.Errorf("start the emulated ESP32: %w", err)
		}
		defer bed.Close()
		target, o.Target = benchrun.BedTarget(bed), f.emulatedName()
	default:
		h, err := f.openHost(ctx, log)
		if err != nil {
			return err
		}
		defer h.Close()
		target, o.Target = benchrun.HostTarget(h, f.serial.Baud), f.serial.Port
		if !h.Port().FlowControl() {
			o.Flow = flowNone
		}
	}
	log.Info().Str("target", o.Target).Str("protocol", f.Protocol).Int("baud", f.serial.Baud).Str("flow", o.Flow).
		Dur("duration", f.Duration).Msg("measuring")

	asJSON, _ := cmd.Flags().GetBool(flagJSON)
	var bar *benchBar
	if !asJSON && !f.CSV && isTerminal(cmd.ErrOrStderr()) {
		bar = &benchBar{w: cmd.ErrOrStderr()}
	}
	if f.sweeping() {
		sw, err := benchrun.Sweep(ctx, target.(benchrun.Switcher), f.sweepSteps(), o, bar.update)
		bar.finish()
		if err != nil {
			return err
		}
		return printerFor(cmd).Result(benchSweepResult{SweepReport: sw, Protocol: f.Protocol}, func(w io.Writer) {
			if f.CSV {
				writeSweepCSV(w, sw)
			} else {
				writeSweepTable(w, sw)
			}
		})
	}
	rep, err := benchrun.Run(ctx, target, o, bar.update)
	bar.finish()
	if err != nil {
		return err
	}
	if f.Protocol == config.ProtocolV3 {
		rep.Verdict = v3Verdict(rep.Verdict)
	}
	return printerFor(cmd).Result(benchResult{Report: rep, Protocol: f.Protocol}, func(w io.Writer) {
		if f.CSV {
			writeBenchCSV(w, rep)
		} else {
			writeBenchTable(w, rep, f.Protocol)
		}
	})
}

// benchResult is bench's JSON: the report with the protocol measured.
type benchResult struct {
	// The report's fields come first, so the JSON begins as it did before
	// the protocol was added.
	benchrun.Report
	Protocol string `json:"protocol"` // native or v3
}

// benchSweepResult is a sweep's JSON with the protocol measured.
type benchSweepResult struct {
	// The report's fields come first, so the JSON begins as it did before
	// the protocol was added.
	benchrun.SweepReport
	Protocol string `json:"protocol"`
}

// benchIdleHint is how benchrun's verdict explains a line that sat idle;
// for v3 the cause is another.
const benchIdleHint = "the line sat idle; the host or the device does not keep it busy (CPU load, the USB adapter's latency timer)"

// v3Verdict replaces the verdict's explanation of an idle line by v3's own
// reason; a verdict without it is returned as it is.
func v3Verdict(v string) string {
	return strings.Replace(v, benchIdleHint,
		"v3 is a stop-and-wait RPC, one operation per round trip and every read a poll, so both ways at once share one turn; uartproxy's firmware (--protocol native) keeps the line busy both ways", 1)
}

// bedOptions returns the in-process stack of --emulate.
func (f *benchFlags) bedOptions(log zerolog.Logger) testbed.Options {
	flow := f.serial.Flow == flowRTSCTS
	l := f.emulatedLine()
	dc := emulator.DefaultConfig()
	dc.Baud = f.serial.Baud
	dc.Logger = log.With().Str("device", "emulator").Logger()
	o := testbed.Options{Line: uartemu.Symmetric(l), Device: dc}
	o.Host.Logger = log.With().Str("layer", "mux").Logger()
	o.Link.Logger = log.With().Str("layer", "link").Logger()
	// testbed.New does this too when the line has no RTS/CTS; said here
	// so it does not depend on that.
	o.Link.NoFlowControl = !flow
	o.Device.Link.NoFlowControl = !flow
	return o
}

// emulatedLine is the line of --emulate, each way.
func (f *benchFlags) emulatedLine() uartemu.Line {
	return uartemu.Line{Baud: f.serial.Baud, FlowControl: f.serial.Flow == flowRTSCTS, BER: f.BER, DropRate: f.Drop, BurstRate: f.BurstRate}
}

// emulatedName describes the emulated line for the report.
func (f *benchFlags) emulatedName() string {
	var imp []string
	for _, p := range []struct {
		name string
		v    float64
	}{{"BER", f.BER}, {"drop", f.Drop}, {"burst rate", f.BurstRate}} {
		if p.v > 0 {
			imp = append(imp, fmt.Sprintf("%s %g", p.name, p.v))
		}
	}
	name := "emulated ESP32"
	if f.Protocol == config.ProtocolV3 {
		name = "emulated ESP32 with the seed's v3 firmware"
	}
	if len(imp) == 0 {
		return name + ", clean line"
	}
	return name + ", " + strings.Join(imp, ", ")
}

// openHost opens --port and waits for the handshake.
func (f *benchFlags) openHost(ctx context.Context, log zerolog.Logger) (*hostlink.Host, error) {
	h, err := hostlink.Open(hostlink.Config{
		Port:   serialport.Config{Path: f.serial.Port, Baud: f.serial.Baud, FlowControl: f.serial.Flow == flowRTSCTS},
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if f.serial.Flow == flowRTSCTS && !h.Port().FlowControl() {
		log.Warn().Str("port", f.serial.Port).Msg("device does not do RTS/CTS flow control; running without (use --flow none to silence this)")
	}
	wctx, cancel := context.WithTimeout(ctx, benchHandshakeTimeout)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Go(func() { // a port that fails ends the wait at once
		select {
		case <-h.Done():
			cancel()
		case <-wctx.Done():
		}
	})
	if err := h.Session().WaitUp(wctx); err != nil {
		stats, herr := h.Link().Stats(), h.Err()
		h.Close()
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case herr != nil:
			return nil, fmt.Errorf("%s: %w", f.serial.Port, herr)
		case stats.LastIncompatibility != "":
			return nil, fmt.Errorf("the device on %s speaks an incompatible protocol: %s", f.serial.Port, stats.LastIncompatibility)
		}
		return nil, fmt.Errorf("no HELLO from the device on %s: is the proxy firmware running and the baud right?", f.serial.Port)
	}
	return h, nil
}

// benchBar draws a progress bar per phase on a terminal. A nil *benchBar
// draws nothing.
type benchBar struct {
	w     io.Writer
	phase string
	bar   *progressbar.ProgressBar
}

// benchPhaseLabel names the phases for people.
var benchPhaseLabel = map[string]string{
	benchrun.PhaseEcho: "echo round trip",
	benchrun.PhaseUp:   "host → device  ",
	benchrun.PhaseDown: "device → host  ",
	benchrun.PhaseBoth: "both ways      ",
}

func (b *benchBar) update(phase string, done, total time.Duration) {
	if b == nil {
		return
	}
	if phase != b.phase {
		b.finish()
		b.phase = phase
		b.bar = progressbar.NewOptions64(total.Milliseconds(),
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionSetDescription(benchPhaseLabel[phase]),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionClearOnFinish(),
		)
	}
	b.bar.Set64(done.Milliseconds())
}

func (b *benchBar) finish() {
	if b == nil || b.bar == nil {
		return
	}
	b.bar.Finish()
	b.bar = nil
}

// Row labels of the table.
var benchRowLabel = map[string]string{
	benchrun.PhaseEcho: "echo (idle link)",
	benchrun.PhaseUp:   "host → device",
	benchrun.PhaseDown: "device → host",
	benchrun.PhaseBoth: "both ways",
}

// writeBenchTable prints the report for people: a table and the verdict.
func writeBenchTable(w io.Writer, r benchrun.Report, protocol string) {
	fmt.Fprintf(w, "%s at %d baud (ceiling %s B/s), flow control %s; each phase %v after %v of warm-up\n",
		r.Target, r.Baud, thousands(r.LineRate), r.Flow, seconds(r.Duration), seconds(r.Warmup))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "phase\tgoodput B/s\tof line\tCRC err host/dev\tretx host/dev\ttimeouts host/dev\tRTT min/median/p99\n")
	for _, p := range r.Phases {
		link := fmt.Sprintf("%s / %s\t%s / %s\t%s / %s",
			rate(p.Host.CRCErrorRate, p.Host.CRCErrors), devFig(p.Device, func(f *benchrun.LinkFigures) string { return rate(f.CRCErrorRate, f.CRCErrors) }),
			rate(p.Host.RetransmitRate, p.Host.Retransmits), devFig(p.Device, func(f *benchrun.LinkFigures) string { return rate(f.RetransmitRate, f.Retransmits) }),
			strconv.FormatUint(p.Host.Timeouts, 10), devFig(p.Device, func(f *benchrun.LinkFigures) string { return strconv.FormatUint(f.Timeouts, 10) }))
		label := benchRowLabel[p.Name]
		switch {
		case p.RTT != nil:
			rtt := "-"
			if p.RTT.Count > 0 {
				rtt = fmt.Sprintf("%.2f / %.2f / %.2f ms, %d echoes of %d B", p.RTT.MinMS, p.RTT.MedianMS, p.RTT.P99MS, p.RTT.Count, p.RTT.Size)
			}
			fmt.Fprintf(tw, "%s\t-\t-\t%s\t%s\n", label, link, rtt)
		case p.Up != nil && p.Down != nil:
			fmt.Fprintf(tw, "%s: up\t%s\t%s\t%s\n", label, thousands(p.Up.BytesPerSecond), pct(p.Up.LineShare), link)
			fmt.Fprintf(tw, "%s  down\t%s\t%s\n", strings.Repeat(" ", len([]rune(label))), thousands(p.Down.BytesPerSecond), pct(p.Down.LineShare))
		default:
			g := p.Up
			if g == nil {
				g = p.Down
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", label, thousands(g.BytesPerSecond), pct(g.LineShare), link)
		}
	}
	tw.Flush()
	switch {
	case protocol == config.ProtocolV3:
		fmt.Fprintln(w, "(protocol v3: dev - as the v3 emulator's counters are not collected; uploads are counted as the board reports them sent; retx = REQs resent per call)")
	case !r.DeviceCounters:
		fmt.Fprintln(w, "(dev -: the board's own counters cannot be seen from here; uploads are counted as the host sends them)")
	}
	fmt.Fprintf(w, "verdict: %s\n", r.Verdict)
}

// devFig formats a device figure, or "-" when the device was not seen.
func devFig(f *benchrun.LinkFigures, format func(*benchrun.LinkFigures) string) string {
	if f == nil {
		return "-"
	}
	return format(f)
}

// rate formats a rate of n events as a percentage; "0" when none happened.
func rate(r float64, n uint64) string {
	if n == 0 {
		return "0"
	}
	return strconv.FormatFloat(100*r, 'g', 2, 64) + "%"
}

func pct(share float64) string { return fmt.Sprintf("%.1f%%", 100*share) }

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}

// thousands formats v rounded to an integer, with commas between groups of
// three digits.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// benchCSVHeader names the columns of --csv.
var benchCSVHeader = []string{
	"phase", "window_s",
	"up_bytes_per_second", "up_line_share", "down_bytes_per_second", "down_line_share",
	"rtt_count", "rtt_min_ms", "rtt_median_ms", "rtt_p99_ms",
	"host_crc_error_rate", "host_retransmit_rate", "host_timeouts",
	"device_crc_error_rate", "device_retransmit_rate", "device_timeouts",
}

// writeBenchCSV prints one row per phase; cells that do not apply are
// empty.
func writeBenchCSV(w io.Writer, r benchrun.Report) {
	cw := csv.NewWriter(w)
	cw.Write(benchCSVHeader)
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	for _, p := range r.Phases {
		row := make([]string, 0, len(benchCSVHeader))
		row = append(row, p.Name, f(p.Window))
		for _, g := range []*benchrun.Goodput{p.Up, p.Down} {
			if g == nil {
				row = append(row, "", "")
			} else {
				row = append(row, f(g.BytesPerSecond), f(g.LineShare))
			}
		}
		if p.RTT != nil {
			row = append(row, strconv.Itoa(p.RTT.Count), f(p.RTT.MinMS), f(p.RTT.MedianMS), f(p.RTT.P99MS))
		} else {
			row = append(row, "", "", "", "")
		}
		row = append(row, f(p.Host.CRCErrorRate), f(p.Host.RetransmitRate), u(p.Host.Timeouts))
		if d := p.Device; d != nil {
			row = append(row, f(d.CRCErrorRate), f(d.RetransmitRate), u(d.Timeouts))
		} else {
			row = append(row, "", "", "")
		}
		cw.Write(row)
	}
	cw.Flush()
}

// writeSweepTable prints a sweep for people: one row per setting, then the
// recommendation.
func writeSweepTable(w io.Writer, sw benchrun.SweepReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "baud\tflow\tup B/s\tup of line\tdown B/s\tdown of line\tRTT median\tCRC errors\tretransmits\tresult\n")
	for _, s := range sw.Steps {
		flow := "none"
		if s.Flow {
			flow = "rtscts"
		}
		if s.Report == nil {
			fmt.Fprintf(tw, "%d\t%s\t-\t-\t-\t-\t-\t-\t-\t%s\n", s.Baud, flow, s.Error)
			continue
		}
		up, down, echo := s.Report.Phase(benchrun.PhaseUp), s.Report.Phase(benchrun.PhaseDown), s.Report.Phase(benchrun.PhaseEcho)
		var crc, retx uint64
		for _, p := range s.Report.Phases {
			crc += p.Host.CRCErrors
			retx += p.Host.Retransmits
			if p.Device != nil {
				crc += p.Device.CRCErrors
				retx += p.Device.Retransmits
			}
		}
		rtt := "-"
		if echo != nil && echo.RTT != nil {
			rtt = fmt.Sprintf("%.2f ms", echo.RTT.MedianMS)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.1f %%\t%s\t%.1f %%\t%s\t%d\t%d\tok\n", s.Baud, flow,
			thousands(up.Up.BytesPerSecond), 100*up.Up.LineShare, thousands(down.Down.BytesPerSecond), 100*down.Down.LineShare, rtt, crc, retx)
	}
	tw.Flush()
	if sw.Recommended != nil {
		fmt.Fprintf(w, "recommended: %s\n", sw.Why)
	} else {
		fmt.Fprintf(w, "no recommendation: %s\n", sw.Why)
	}
}

// writeSweepCSV prints one row per setting.
func writeSweepCSV(w io.Writer, sw benchrun.SweepReport) {
	cw := csv.NewWriter(w)
	cw.Write([]string{"baud", "flow", "up_bytes_per_second", "up_line_share", "down_bytes_per_second", "down_line_share", "rtt_median_ms", "error", "recommended"})
	for _, s := range sw.Steps {
		flow := "none"
		if s.Flow {
			flow = "rtscts"
		}
		rec := strconv.FormatBool(sw.Recommended != nil && *sw.Recommended == s.Step)
		if s.Report == nil {
			cw.Write([]string{strconv.Itoa(s.Baud), flow, "", "", "", "", "", s.Error, rec})
			continue
		}
		up, down, echo := s.Report.Phase(benchrun.PhaseUp), s.Report.Phase(benchrun.PhaseDown), s.Report.Phase(benchrun.PhaseEcho)
		rtt := ""
		if echo != nil && echo.RTT != nil {
			rtt = strconv.FormatFloat(echo.RTT.MedianMS, 'f', 3, 64)
		}
		cw.Write([]string{strconv.Itoa(s.Baud), flow,
			strconv.FormatFloat(up.Up.BytesPerSecond, 'f', 0, 64), strconv.FormatFloat(up.Up.LineShare, 'f', 4, 64),
			strconv.FormatFloat(down.Down.BytesPerSecond, 'f', 0, 64), strconv.FormatFloat(down.Down.LineShare, 'f', 4, 64),
			rtt, "", rec})
	}
	cw.Flush()
}

package benchrun

import (
	"fmt"
	"strings"
	"time"

	"github.com/uartproxy/uartproxy/internal/link"
)

// Phase names, in the order Run measures them.
const (
	PhaseEcho = "echo" // ECHO requests one at a time on an idle link
	PhaseUp   = "up"   // host → device, into "discard"
	PhaseDown = "down" // device → host, from "source"
	PhaseBoth = "both" // up and down at once
)

// Where an upload was counted (Goodput.CountedAt).
const (
	CountedDevice   = "device"    // bytes the device's mux received
	CountedHostSent = "host_sent" // bytes the host's mux put into DATA frames
	CountedHostRead = "host_read" // bytes the host read, pattern-checked
)

// Report is the result of Run.
type Report struct {
	Target string `json:"target"` // Options.Target
	Flow   string `json:"flow"`   // Options.Flow
	Baud   int    `json:"baud"`
	// LineRate is the ceiling, Baud/10 bytes per second (8N1).
	LineRate float64 `json:"line_rate"`
	// DeviceCounters says the device's link counters were seen (an
	// emulated device); otherwise only the host's are in the report.
	DeviceCounters bool    `json:"device_counters"`
	Warmup         float64 `json:"warmup_s"`   // before each phase's window
	Duration       float64 `json:"duration_s"` // of each phase's window
	Phases         []Phase `json:"phases"`
	// Verdict sums the figures up in one line for people.
	Verdict string `json:"verdict"`
}

// Phase is what one phase measured over its window.
type Phase struct {
	Name   string   `json:"name"`
	Window float64  `json:"window_s"` // the measured window, in seconds
	RTT    *RTT     `json:"rtt,omitempty"`
	Up     *Goodput `json:"up,omitempty"`   // host → device
	Down   *Goodput `json:"down,omitempty"` // device → host
	// Host and Device are the links' counters over the window; Device is
	// nil unless Report.DeviceCounters.
	Host   LinkFigures  `json:"host"`
	Device *LinkFigures `json:"device,omitempty"`
}

// Goodput is one direction's payload rate.
type Goodput struct {
	Bytes          int64   `json:"bytes"` // counted in the window
	BytesPerSecond float64 `json:"bytes_per_second"`
	// LineShare is BytesPerSecond ÷ (baud/10); the protocol's ceiling is
	// about 0.98 (docs/benchmarks.md).
	LineShare float64 `json:"line_share"`
	// CountedAt says where the bytes were counted (Counted* constants).
	CountedAt string `json:"counted_at"`
	// Verified is how many bytes of a download, over the whole phase, were
	// compared with the source pattern (all of them).
	Verified int64 `json:"verified_bytes,omitempty"`
}

// RTT is the round trip of ECHO requests.
type RTT struct {
	Count    int     `json:"count"`
	Size     int     `json:"size"` // payload bytes per request
	MinMS    float64 `json:"min_ms"`
	MedianMS float64 `json:"median_ms"`
	P99MS    float64 `json:"p99_ms"`
	MaxMS    float64 `json:"max_ms"`
}

// LinkFigures are one link's counters over a window.
type LinkFigures struct {
	// FramesReceived counts frames that arrived: valid ones plus those
	// dropped for a bad CRC.
	FramesReceived uint64 `json:"frames_received"`
	CRCErrors      uint64 `json:"crc_errors"`
	// CRCErrorRate is CRCErrors ÷ FramesReceived.
	CRCErrorRate float64 `json:"crc_error_rate"`
	// DataFramesSent counts DATA frames sent for the first time.
	DataFramesSent uint64 `json:"data_frames_sent"`
	Retransmits    uint64 `json:"retransmits"`
	// RetransmitRate is Retransmits ÷ DataFramesSent. It exceeds 1 when
	// frames had to be resent more than once on average, as in a stall.
	RetransmitRate float64 `json:"retransmit_rate"`
	Timeouts       uint64  `json:"timeouts"` // retransmission timer expiries
	// Dropped counts the frames dropped for other reasons, by reason.
	Dropped map[string]uint64 `json:"dropped,omitempty"`
	// SRTTMS is the smoothed round trip at the window's end.
	SRTTMS float64 `json:"srtt_ms"`
}

// figures returns the counters of a link between two snapshots.
func figures(a, z link.Stats) LinkFigures {
	f := LinkFigures{
		CRCErrors:      z.Dropped[link.DropCRC] - a.Dropped[link.DropCRC],
		DataFramesSent: z.TxData - a.TxData,
		Retransmits:    z.Retransmits - a.Retransmits,
		Timeouts:       z.Timeouts - a.Timeouts,
		SRTTMS:         ms(z.SRTT),
	}
	f.FramesReceived = z.RxFrames - a.RxFrames + f.CRCErrors
	f.CRCErrorRate = ratio(f.CRCErrors, f.FramesReceived)
	f.RetransmitRate = ratio(f.Retransmits, f.DataFramesSent)
	for r, v := range z.Dropped {
		if d := v - a.Dropped[r]; d > 0 && r != link.DropCRC {
			if f.Dropped == nil {
				f.Dropped = map[string]uint64{}
			}
			f.Dropped[r] = d
		}
	}
	return f
}

func ratio(n, d uint64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Phase returns the phase called name, or nil.
func (r *Report) Phase(name string) *Phase {
	for i := range r.Phases {
		if r.Phases[i].Name == name {
			return &r.Phases[i]
		}
	}
	return nil
}

// Verdict thresholds: shares of the line for one direction alone. The
// protocol's ceiling is 0.98; a clean emulated line measures 0.97–0.98.
const (
	goodShare = 0.95
	fairShare = 0.85
)

// verdict sums r up in one line.
func verdict(r Report) string {
	worst, dirs := 2.0, []string{}
	for _, name := range []string{PhaseUp, PhaseDown} {
		p := r.Phase(name)
		if p == nil {
			continue
		}
		for _, g := range []*Goodput{p.Up, p.Down} {
			if g != nil {
				worst = min(worst, g.LineShare)
				dirs = append(dirs, fmt.Sprintf("%.1f%%", 100*g.LineShare))
			}
		}
	}
	if len(dirs) == 0 {
		return "no throughput measured"
	}
	var crc, frames, retx, sent, timeouts uint64
	drops := map[string]uint64{}
	for _, p := range r.Phases {
		for _, f := range []*LinkFigures{&p.Host, p.Device} {
			if f == nil {
				continue
			}
			crc += f.CRCErrors
			frames += f.FramesReceived
			retx += f.Retransmits
			sent += f.DataFramesSent
			timeouts += f.Timeouts
			for k, v := range f.Dropped {
				drops[k] += v
			}
		}
	}
	grade := "poor"
	switch {
	case worst >= goodShare:
		grade = "good"
	case worst >= fairShare:
		grade = "fair"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s of the line (up, down)", grade, strings.Join(dirs, ", "))
	switch {
	case crc > 0:
		fmt.Fprintf(&b, "; %d of %d frames failed their CRC (%.2g%%) and %d were resent", crc, frames, 100*ratio(crc, frames), retx)
		if worst < goodShare {
			b.WriteString(": the line is noisy; check the cable and its ground, or lower --baud")
		}
	case retx > 0 || timeouts > 0:
		fmt.Fprintf(&b, "; no CRC errors, but %d of %d frames were resent (%d timeouts)", retx, sent, timeouts)
		if len(drops) > 0 {
			fmt.Fprintf(&b, ", drops %v", drops)
		}
		if r.Flow == "none" {
			b.WriteString(": bytes are lost without flow control; wire RTS/CTS or lower --baud")
		}
	default:
		b.WriteString("; no CRC errors, no retransmissions")
		if worst < goodShare {
			b.WriteString(": the line sat idle; the host or the device does not keep it busy (CPU load, the USB adapter's latency timer)")
		}
	}
	if p := r.Phase(PhaseEcho); p != nil && p.RTT != nil && p.RTT.Count > 0 {
		fmt.Fprintf(&b, "; echo round trip %.2f ms median", p.RTT.MedianMS)
	}
	return b.String()
}

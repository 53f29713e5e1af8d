package uplink

import (
	"errors"
	"io"
	"math/rand/v2"
	"time"

	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/seedv3"
	"github.com/uartproxy/uartproxy/internal/slip"
)

// Protocols a device may speak (Config.Protocol).
const (
	ProtocolAuto   = "auto"   // tell them apart at start-up
	ProtocolNative = "native" // uartproxy's own (docs/protocol.md)
	ProtocolV3     = "v3"     // the seed's original firmware
)

// probeTime bounds one detection: a native device sends a HELLO every
// 250 ms while it has no session and keepalive probes every 300 ms while
// it has one; a v3 board answers a ping within milliseconds.
const (
	probeTime  = 1500 * time.Millisecond
	probeEvery = 250 * time.Millisecond
)

// errNoAnswer is a probe that heard neither protocol.
var errNoAnswer = errors.New("no frame of either protocol (native HELLO or v3 answer) from the device")

// deadliner is a port whose reads can be given a deadline.
type deadliner interface {
	SetReadDeadline(t time.Time) error
}

// probe tells a native device from a v3 board on rw: it listens for native
// frames while sending a v3 ping every probeEvery. A native device drops
// the pings (seed_v3, docs/protocol.md §3.5); a v3 board ignores native
// frames. Bytes read during the probe are consumed. rw must return from
// Read within about probeEvery (a read timeout or deadline).
func probe(rw io.ReadWriter) (string, error) {
	deadline := time.Now().Add(probeTime)
	dec := slip.NewDecoder(frame.MaxFrameLen)
	seq := uint16(rand.N(0xfffe) + 1)
	ping, err := seedv3.Append(nil, map[string]any{"op": "ping", "args": map[string]any{}})
	if err != nil {
		return "", err
	}
	var found string
	buf := make([]byte, 4096)
	lastPing := time.Time{}
	for time.Now().Before(deadline) {
		if time.Since(lastPing) >= probeEvery {
			lastPing = time.Now()
			if _, err := rw.Write(slip.AppendEncode(nil, frame.AppendV3(nil, frame.V3Header{Type: frame.V3Req, Seq: seq}, ping))); err != nil {
				return "", err
			}
		}
		if d, ok := rw.(deadliner); ok {
			d.SetReadDeadline(time.Now().Add(probeEvery / 2))
		}
		n, err := rw.Read(buf)
		dec.Feed(buf[:n], func(f []byte) {
			if found != "" {
				return
			}
			if _, _, err := frame.Parse(f, frame.MaxPayloadLimit); err == nil {
				found = ProtocolNative
				return
			}
			if h, _, err := frame.ParseV3(f); err == nil && (h.Type == frame.V3Resp || h.Type == frame.V3Ack) {
				found = ProtocolV3
			}
		}, func(string) {})
		if found != "" {
			if d, ok := rw.(deadliner); ok {
				d.SetReadDeadline(time.Time{})
			}
			if found == ProtocolV3 {
				// ACK the answer, as v3 asks, so the board drops it from
				// its cache.
				rw.Write(slip.AppendEncode(nil, frame.AppendV3(nil, frame.V3Header{Type: frame.V3Ack, Seq: seq}, nil)))
			}
			return found, nil
		}
		if err != nil && !isTimeout(err) {
			return "", err
		}
	}
	if d, ok := rw.(deadliner); ok {
		d.SetReadDeadline(time.Time{})
	}
	return "", errNoAnswer
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

package cli

// The firmware check of 'uartproxy flash': after the reset, wait on the data
// UART (--check-port) for the firmware's HELLO and compare its version with
// the one built into this binary.

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/uartproxy/uartproxy/firmware"
	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/serialport"
	"github.com/uartproxy/uartproxy/internal/slip"
)

var versionRE = regexp.MustCompile(`(?m)^VERSION\s*=\s*"([^"]*)"`)

// firmwareVersion is the VERSION of the firmware built into this binary.
func firmwareVersion() string {
	b, _ := fs.ReadFile(firmware.FS(), "uproxy/__init__.py")
	if m := versionRE.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// helloResult is what --check-port found.
type helloResult struct {
	Port     string `json:"port"`
	OK       bool   `json:"ok"`
	Firmware string `json:"firmware,omitempty"`
	Model    string `json:"model,omitempty"`
	Baud     uint   `json:"baud,omitempty"`
	AfterMS  int64  `json:"after_ms"`
	Error    string `json:"error,omitempty"`
}

// helloWatch reads the data UART and keeps the first device HELLO that
// arrives after arm: HELLOs from before are the old firmware's.
type helloWatch struct {
	port  *serialport.Port
	log   zerolog.Logger
	mu    sync.Mutex
	armed bool
	dec   *slip.Decoder
	bad   int
	hello chan message.Hello
	done  chan struct{}
}

func startHelloWatch(path string, baud int, flow bool, log zerolog.Logger) (*helloWatch, error) {
	p, err := serialport.Open(serialport.Config{Path: path, Baud: baud, FlowControl: flow})
	if err != nil {
		return nil, err
	}
	w := &helloWatch{port: p, log: log, dec: slip.NewDecoder(frame.MaxFrameLen), hello: make(chan message.Hello, 1), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

func (w *helloWatch) loop() {
	defer close(w.done)
	b := make([]byte, 4096)
	for {
		n, err := w.port.Read(b)
		w.mu.Lock()
		if w.armed {
			w.dec.Feed(b[:n], w.frame, nil)
		}
		w.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// frame looks at one SLIP frame, as sniff does: native frame, HELLO, role.
func (w *helloWatch) frame(p []byte) {
	h, payload, err := frame.Parse(p, 0)
	if err != nil || h.Type != frame.Hello {
		w.bad++ // garbage or the wrong baud rate: no host means no DATA
		return
	}
	hello, err := message.ParseHello(payload)
	if err != nil || hello.Role != message.RoleDevice {
		w.bad++
		return
	}
	select {
	case w.hello <- hello:
	default:
	}
}

// setLine sets the data UART to the baud rate and flow control of c.
func (w *helloWatch) setLine(c boardConfig) error {
	baud, err := strconv.Atoi(fmt.Sprint(c["baud"]))
	if err != nil || baud <= 0 {
		return fmt.Errorf("the board's %s has baud %v", configPath, c["baud"])
	}
	if err := w.port.SetBaud(baud); err != nil {
		return err
	}
	_, err = w.port.SetFlowControl(c["flow"] == flowRTSCTS)
	return err
}

func (w *helloWatch) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = true
	w.dec.Reset()
}

func (w *helloWatch) wait(ctx context.Context) (message.Hello, bool) {
	select {
	case h := <-w.hello:
		return h, true
	case <-ctx.Done():
		return message.Hello{}, false
	}
}

func (w *helloWatch) close() {
	w.port.Close()
	<-w.done
}

// result says what the HELLO shows, or why there is none.
func (w *helloWatch) result(h *message.Hello, f *flashFlags, after time.Duration) *helloResult {
	r := &helloResult{Port: f.CheckPort, AfterMS: after.Milliseconds()}
	if h == nil {
		w.mu.Lock()
		bad := w.bad
		w.mu.Unlock()
		r.Error = fmt.Sprintf("no HELLO from the firmware on %s within %v", f.CheckPort, f.CheckTimeout)
		if bad > 0 {
			r.Error += fmt.Sprintf(" (%d frames that were not a device HELLO: are --data-baud and the firmware's baud the same?)", bad)
		} else {
			r.Error += " (check the wiring: board TX to adapter RX, RX to TX, GND; and --uart-tx/--uart-rx)"
		}
		return r
	}
	r.Firmware, r.Model, r.Baud = h.Firmware, h.Model, h.Baud
	mine := message.Hello{ProtoMin: message.Revision, ProtoMax: message.Revision}
	if _, err := message.Negotiate(mine, *h); err != nil {
		r.Error = fmt.Sprintf("the firmware on %s answers, but %v", f.CheckPort, err)
	} else if want := firmwareVersion(); want != "" && h.Firmware != want {
		r.Error = fmt.Sprintf("the board runs firmware %q, not %q that flash wrote", h.Firmware, want)
		if f.DryRun {
			r.Error = fmt.Sprintf("the board runs firmware %q; flash would write %q", h.Firmware, want)
		}
	} else {
		r.OK = true
	}
	return r
}

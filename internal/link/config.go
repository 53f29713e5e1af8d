package link

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/message"
)

// Config configures a Link. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// Hello is what this side announces. Session, PeerSession and the
	// protocol range are filled in by the link.
	Hello message.Hello

	HelloInterval time.Duration // HELLO resend period while not established
	KeepAlive     time.Duration // probe with an ACKREQ after hearing nothing this long
	DeadTimeout   time.Duration // end the session after this long without a valid frame
	InitialRTO    time.Duration
	MinRTO        time.Duration
	MaxRTO        time.Duration

	// NoFlowControl says the UART runs without RTS/CTS, so a receiver that
	// falls behind loses bytes. Only then does the sender shrink the
	// frames in flight after loss and back its timer off far; with RTS/CTS
	// every loss is line noise, and backing off would only slow recovery
	// (docs/protocol.md §6.5b).
	NoFlowControl bool

	// Session, when non-zero, is the first session id (tests); later
	// sessions always get fresh random ids.
	Session uint32

	Logger zerolog.Logger
}

// Defaults (tuning; the protocol only fixes their meaning).
const (
	DefaultMaxPayload = 2048
	DefaultWindow     = 32
)

// DefaultConfig returns the host-side defaults of docs/protocol.md §11.
func DefaultConfig() Config {
	return Config{
		Hello: message.Hello{
			Role:         message.RoleHost,
			MaxPayload:   DefaultMaxPayload,
			Window:       DefaultWindow,
			MaxStreams:   1024,
			StreamWindow: 256 << 10,
			Features:     message.FeaturesAll,
		},
		HelloInterval: 250 * time.Millisecond,
		KeepAlive:     300 * time.Millisecond,
		DeadTimeout:   1500 * time.Millisecond,
		InitialRTO:    500 * time.Millisecond,
		MinRTO:        20 * time.Millisecond,
		MaxRTO:        2 * time.Second,
		Logger:        zerolog.Nop(),
	}
}

// withDefaults fills zero fields and validates the rest.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.Hello.MaxPayload == 0 {
		c.Hello.MaxPayload = d.Hello.MaxPayload
	}
	if c.Hello.Window == 0 {
		c.Hello.Window = d.Hello.Window
	}
	if c.Hello.MaxStreams == 0 {
		c.Hello.MaxStreams = d.Hello.MaxStreams
	}
	if c.Hello.StreamWindow == 0 {
		c.Hello.StreamWindow = d.Hello.StreamWindow
	}
	if c.Hello.Features == 0 {
		c.Hello.Features = d.Hello.Features
	}
	for _, p := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.HelloInterval, d.HelloInterval}, {&c.KeepAlive, d.KeepAlive}, {&c.DeadTimeout, d.DeadTimeout},
		{&c.InitialRTO, d.InitialRTO}, {&c.MinRTO, d.MinRTO}, {&c.MaxRTO, d.MaxRTO},
	} {
		if *p.v <= 0 {
			*p.v = p.def
		}
	}
	c.Hello.ProtoMin, c.Hello.ProtoMax = message.Revision, message.Revision
	switch {
	case c.Hello.MaxPayload < frame.MinPayloadLimit || c.Hello.MaxPayload > frame.MaxPayloadLimit:
		return c, fmt.Errorf("link: max payload %d outside %d..%d", c.Hello.MaxPayload, frame.MinPayloadLimit, frame.MaxPayloadLimit)
	case c.Hello.Window > maxWindow:
		return c, fmt.Errorf("link: window %d above %d", c.Hello.Window, maxWindow)
	case c.KeepAlive >= c.DeadTimeout:
		return c, fmt.Errorf("link: keepalive %v must be shorter than dead timeout %v", c.KeepAlive, c.DeadTimeout)
	}
	return c, nil
}

package mux

import (
	"context"

	"github.com/fxamacker/cbor/v2"
	"github.com/rs/zerolog"
	"github.com/uartproxy/uartproxy/internal/message"
)

// Handler serves what the peer asks of this side. The device side (the
// emulator, the firmware) has one; the host does not.
type Handler interface {
	// ServeOpen is called in a new goroutine for each OPEN. It must call
	// st.Accept or st.Reject, then may use st until it is done with it.
	ServeOpen(st *Stream, req OpenRequest)
	// ServeRequest answers one REQUEST. result is CBOR-encoded as is.
	ServeRequest(ctx context.Context, op message.Op, args cbor.RawMessage) (result any, code message.Code)
}

// OpenRequest is what the peer asked for in an OPEN.
type OpenRequest struct {
	Kind message.Kind
	Host string
	Port uint16
	Opts message.Options
}

// Config configures a Session.
type Config struct {
	Role message.Role
	// MaxStreams is how many streams this side keeps open at once,
	// whoever opened them; beyond it the peer's OPENs and ACCEPTs are
	// refused with code limit. It should equal the link's Hello.MaxStreams.
	MaxStreams int
	// StreamWindow is this side's receive window per stream, in bytes.
	StreamWindow uint32
	// SendBuffer is how many bytes Write may queue per stream before it
	// blocks.
	SendBuffer int
	// AcceptBacklog bounds connections queued per Listener.
	AcceptBacklog int
	// MaxHandlerRequests bounds REQUESTs served at once (device side).
	MaxHandlerRequests int
	// Handler serves the peer's OPENs and REQUESTs; nil refuses them.
	Handler Handler
	// OnEvent is called (in its own goroutine) for every EVENT received.
	OnEvent func(kind message.EventKind, value cbor.RawMessage)
	Logger  zerolog.Logger
}

// DefaultConfig returns host defaults (docs/protocol.md §11).
func DefaultConfig() Config {
	return Config{
		Role:               message.RoleHost,
		MaxStreams:         1024,
		StreamWindow:       256 << 10,
		SendBuffer:         64 << 10,
		AcceptBacklog:      16,
		MaxHandlerRequests: 16,
		Logger:             zerolog.Nop(),
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxStreams <= 0 {
		c.MaxStreams = d.MaxStreams
	}
	if c.StreamWindow == 0 {
		c.StreamWindow = d.StreamWindow
	}
	if c.SendBuffer <= 0 {
		c.SendBuffer = d.SendBuffer
	}
	if c.AcceptBacklog <= 0 {
		c.AcceptBacklog = d.AcceptBacklog
	}
	if c.MaxHandlerRequests <= 0 {
		c.MaxHandlerRequests = d.MaxHandlerRequests
	}
	return c
}

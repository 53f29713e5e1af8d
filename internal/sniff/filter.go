package sniff

import (
	"slices"
	"strings"

	"github.com/uartproxy/uartproxy/internal/message"
)

// Filter selects the events to show. The zero Filter selects everything;
// set conditions must all hold.
type Filter struct {
	// Stream, when HasStream is set, keeps DATA frames with a message for
	// that stream id, and seed frames whose args or result name it as
	// "sid"; other messages of those frames are left out.
	Stream    uint32
	HasStream bool
	// Types keeps events whose frame type (HELLO, DATA, ACK, REQ, RESP),
	// kind (noise, rejected, slip_too_long) or message type (OPEN, RESET,
	// …) is listed, case-insensitively. When only message types match, the
	// other messages of the frame are left out. DATA names both the frame
	// type and the message type, so it keeps whole DATA frames.
	Types []string
	// Errors keeps only events that show a fault (Event.IsError).
	Errors bool
}

// TypeNames returns every name Filter.Types understands, for completion and
// messages.
func TypeNames() []string {
	names := []string{"HELLO", "DATA", "ACK", "REQ", "RESP"}
	for t := message.TypeOpen; t <= message.TypeEvent; t++ {
		if !slices.Contains(names, t.String()) {
			names = append(names, t.String())
		}
	}
	return append(names, "noise", "rejected", "slip_too_long")
}

// Match returns the event to show for ev, with its messages narrowed to
// those the filter asks for, or nil when ev is not selected. ev itself is
// not changed.
func (f *Filter) Match(ev *Event) *Event {
	if f.Errors && !ev.IsError() {
		return nil
	}
	msgs := ev.Messages
	narrowed := false
	if len(f.Types) > 0 {
		if !f.hasType(ev.Type) && !f.hasType(ev.Kind.String()) {
			var keep []Msg
			for _, m := range msgs {
				if f.hasType(m.Type) {
					keep = append(keep, m)
				}
			}
			if len(keep) == 0 {
				return nil
			}
			msgs, narrowed = keep, true
		}
	}
	if f.HasStream {
		if ev.Body != nil {
			if !mentionsSID(ev.Body, f.Stream) {
				return nil
			}
		} else {
			var keep []Msg
			for _, m := range msgs {
				if m.HasSID && m.SID == f.Stream {
					keep = append(keep, m)
				}
			}
			if len(keep) == 0 {
				return nil
			}
			msgs, narrowed = keep, true
		}
	}
	if !narrowed {
		return ev
	}
	out := *ev
	out.Messages = msgs
	return &out
}

func (f *Filter) hasType(name string) bool {
	if name == "" {
		return false
	}
	for _, t := range f.Types {
		if strings.EqualFold(t, name) {
			return true
		}
	}
	return false
}

// mentionsSID reports whether a seed payload has "sid": sid in its args or
// result (or at its top level).
func mentionsSID(body any, sid uint32) bool {
	m, ok := body.(Map)
	if !ok {
		return false
	}
	if v, ok := m.Get("sid"); ok {
		if n, ok := v.(uint64); ok && n == uint64(sid) {
			return true
		}
	}
	for _, k := range []string{"args", "result"} {
		if v, ok := m.Get(k); ok {
			if inner, ok := v.(Map); ok && mentionsSID(inner, sid) {
				return true
			}
		}
	}
	return false
}

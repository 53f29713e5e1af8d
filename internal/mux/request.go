package mux

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/fxamacker/cbor/v2"
	"github.com/uartproxy/uartproxy/internal/message"
)

// Request performs one REQUEST (docs/protocol.md §7.11) and returns the raw
// CBOR result. A non-zero code comes back as a *ResetError.
func (s *Session) Request(ctx context.Context, op message.Op, args any) (cbor.RawMessage, error) {
	var raw []byte
	if args != nil {
		var err error
		if raw, err = message.Marshal(args); err != nil {
			return nil, err
		}
	}
	if err := s.WaitUp(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if !s.up {
		s.mu.Unlock()
		return nil, ErrNotConnected
	}
	if len(s.pending) >= maxPendingReqs {
		s.mu.Unlock()
		return nil, &ResetError{Code: message.CodeLimit, Reason: "too many requests in flight"}
	}
	s.reqID++
	id := s.reqID
	ch := make(chan response, 1)
	s.pending[id] = ch
	s.queueLocked(message.Message{Type: message.TypeRequest, ID: id, Op: op, Args: raw})
	s.mu.Unlock()

	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		if r.code != message.CodeOK {
			var reason string
			_ = message.Unmarshal(r.result, &reason)
			return nil, &ResetError{Code: r.code, Reason: reason, Remote: true}
		}
		return r.result, nil
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
		if ctx.Err() == context.DeadlineExceeded {
			return nil, ErrTimeout
		}
		return nil, ctx.Err()
	}
}

// Resolve looks name up on the device. family is 0 (any), 4 or 6.
func (s *Session) Resolve(ctx context.Context, name string, family int) ([]netip.Addr, error) {
	raw, err := s.Request(ctx, message.OpResolve, []any{name, family})
	if err != nil {
		return nil, err
	}
	var texts []string
	if err := message.Unmarshal(raw, &texts); err != nil {
		return nil, fmt.Errorf("mux: resolve result: %w", err)
	}
	out := make([]netip.Addr, 0, len(texts))
	for _, t := range texts {
		if a, err := netip.ParseAddr(t); err == nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// Info asks the device for its state.
func (s *Session) Info(ctx context.Context) (message.Info, error) {
	var info message.Info
	raw, err := s.Request(ctx, message.OpInfo, nil)
	if err != nil {
		return info, err
	}
	if err := message.Unmarshal(raw, &info); err != nil {
		return info, fmt.Errorf("mux: info result: %w", err)
	}
	return info, nil
}

// Echo sends p to the device and returns what came back.
func (s *Session) Echo(ctx context.Context, p []byte) ([]byte, error) {
	raw, err := s.Request(ctx, message.OpEcho, p)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = message.Unmarshal(raw, &out)
	return out, err
}

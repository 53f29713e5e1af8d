package mux

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/uartproxy/uartproxy/internal/message"
)

// Callers outside mux (socks5, forward) classify failures with the standard
// errnos only; these are the mappings they rely on.
func TestErrorsMatchErrnos(t *testing.T) {
	cases := []struct {
		err  error
		want syscall.Errno
	}{
		{&ResetError{Code: message.CodeRefused, Remote: true}, syscall.ECONNREFUSED},
		{&ResetError{Code: message.CodeUnreachable, Remote: true}, syscall.EHOSTUNREACH},
		{&ResetError{Code: message.CodeTimeout}, syscall.ETIMEDOUT},
		{&ResetError{Code: message.CodeDenied}, syscall.EACCES},
		{&ResetError{Code: message.CodeLimit}, syscall.EAGAIN},
		{&ResetError{Code: message.CodeReset}, syscall.ECONNRESET},
		{&ResetError{Code: message.CodeInUse}, syscall.EADDRINUSE},
		{&LinkError{Err: errors.New("peer restarted")}, syscall.ENETRESET},
		{ErrNotConnected, syscall.ENETDOWN},
	}
	for _, c := range cases {
		wrapped := fmt.Errorf("dial: %w", c.err)
		if !errors.Is(wrapped, c.want) {
			t.Errorf("errors.Is(%v, %v) = false", c.err, c.want)
		}
		if errors.Is(wrapped, syscall.EPERM) {
			t.Errorf("errors.Is(%v, EPERM) = true", c.err)
		}
	}
	if errors.Is(&ResetError{Code: message.CodeDNS}, syscall.ECONNREFUSED) {
		t.Error("code dns matches ECONNREFUSED")
	}
}

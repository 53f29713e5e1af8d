package seedv3

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Helpers of the emulated device's ops: arguments, errors, addresses.

// intArg returns args[key] as an integer, def when absent or null.
func intArg(args map[string]any, key string, def int64) (int64, *opError) {
	v, ok := args[key]
	if !ok || v == nil {
		return def, nil
	}
	n, ok := asInt(v)
	if !ok {
		return 0, fail(CodeInvalidParameter, key)
	}
	return n, nil
}

// strArg returns args[key] as text, "" when absent.
func strArg(args map[string]any, key string) (string, *opError) {
	switch v := args[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	}
	return "", fail(CodeInvalidParameter, key)
}

// bytesArg returns args[key] as bytes (text is taken as UTF-8).
func bytesArg(args map[string]any, key string) ([]byte, bool) {
	switch v := args[key].(type) {
	case []byte:
		return v, true
	case string:
		return []byte(v), true
	}
	return nil, false
}

// timeoutArg returns timeout_ms as a duration (default when absent).
// recvArgs reads sock_recv's and sock_recvfrom's n and timeout_ms.
func recvArgs(args map[string]any) (n int64, timeout time.Duration, oe *opError) {
	if n, oe = intArg(args, "n", defaultRecvN); oe != nil {
		return 0, 0, oe
	}
	if n < 0 || n > maxRecvN {
		return 0, 0, fail(CodeInvalidParameter, "n")
	}
	timeout, oe = timeoutArg(args)
	return n, timeout, oe
}

func timeoutArg(args map[string]any) (time.Duration, *opError) {
	ms, oe := intArg(args, "timeout_ms", defaultOpTimeMS)
	if oe != nil {
		return 0, oe
	}
	if ms < 0 {
		return 0, fail(CodeInvalidParameter, "timeout_ms")
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// sock looks up args["sid"].
func (d *Device) sock(args map[string]any) (*devSock, *opError) {
	v, ok := args["sid"]
	if !ok || v == nil {
		return nil, fail(CodeMissingSID, "")
	}
	id, ok := asInt(v)
	if !ok {
		return nil, fail(CodeInvalidParameter, "sid")
	}
	d.mu.Lock()
	s := d.socks[id]
	d.mu.Unlock()
	if s == nil {
		return nil, fail(CodeInvalidSID, strconv.FormatInt(id, 10))
	}
	return s, nil
}

// drop closes s and removes it from the table.
func (d *Device) drop(s *devSock) {
	d.mu.Lock()
	if d.socks[s.id] == s {
		delete(d.socks, s.id)
	}
	d.mu.Unlock()
	s.close()
}

// add gives s the next free sid (1..1024, wrapping).
func (d *Device) add(s *devSock) *opError {
	d.mu.Lock()
	defer d.mu.Unlock()
	for range maxSID {
		d.lastSID = d.lastSID%maxSID + 1
		if d.socks[d.lastSID] == nil {
			s.id = d.lastSID
			d.socks[s.id] = s
			return nil
		}
	}
	return fail(CodeSockOpen, "[Errno 23] ENFILE")
}

// osError writes err as MicroPython prints an OSError.
func osError(err error) string {
	var de *net.DNSError
	switch {
	case errors.As(err, &de):
		return "[Errno -202] EAI_FAIL: " + de.Err
	case errors.Is(err, syscall.ECONNREFUSED):
		return "[Errno 111] ECONNREFUSED"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return "[Errno 110] ETIMEDOUT"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "[Errno 104] ECONNRESET"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "[Errno 113] EHOSTUNREACH"
	case errors.Is(err, syscall.ENETUNREACH):
		return "[Errno 101] ENETUNREACH"
	case errors.Is(err, syscall.EADDRINUSE):
		return "[Errno 98] EADDRINUSE"
	case errors.Is(err, net.ErrClosed):
		return "[Errno 9] EBADF"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "[Errno 110] ETIMEDOUT"
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// pollDeadline turns a timeout_ms into a deadline. MicroPython's timeout 0
// means non-blocking (return what is there); Go fails a read whose
// deadline has passed without looking, so 0 becomes a very short wait.
func pollDeadline(t time.Duration) time.Time {
	return time.Now().Add(max(t, 200*time.Microsecond))
}

// resolve looks up host for a connect or sendto of the given family.
func resolve(ctx context.Context, host string, family int64) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, nil
	}
	network := "ip4"
	if family == familyInet6 {
		network = "ip6"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(addrs) == 0 {
		return netip.Addr{}, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs[0].Unmap(), nil
}

// addrTuple is an address as the seed writes it: (ip, port).
func addrTuple(a net.Addr) Tuple {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return Tuple{a.String(), 0}
	}
	return Tuple{ap.Addr().Unmap().String(), int64(ap.Port())}
}

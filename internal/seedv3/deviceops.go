package seedv3

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
)

// opError is an op's failure: RESP {"ok": false, "error": code, "detail"}.
type opError struct {
	code, detail string
}

func fail(code string, detail string) *opError { return &opError{code, detail} }

// maxRecvN bounds sock_recv's and sock_recvfrom's n on the emulator.
const maxRecvN = 64 << 10

// deviceOp runs one op with its args.
type deviceOp func(d *Device, ctx context.Context, args map[string]any) (any, *opError)

// deviceOps is the dispatch table, indexed by op name.
var deviceOps = map[string]deviceOp{
	OpPing:         (*Device).opPing,
	OpGetTime:      (*Device).opGetTime,
	OpSetTime:      (*Device).opGetTime,
	OpWiFiStatus:   (*Device).opWiFiStatus,
	OpDNS:          (*Device).opDNS,
	OpSockOpen:     (*Device).opSockOpen,
	OpSockSetTO:    (*Device).opSockSetTimeout,
	OpSockConnect:  (*Device).opSockConnect,
	OpSockSend:     (*Device).opSockSend,
	OpSockRecv:     (*Device).opSockRecv,
	OpSockClose:    (*Device).opSockClose,
	OpSockBind:     (*Device).opSockBind,
	OpSockListen:   (*Device).opSockListen,
	OpSockAccept:   (*Device).opSockAccept,
	OpSockSendTo:   (*Device).opSockSendTo,
	OpSockRecvFrom: (*Device).opSockRecvFrom,
	OpSockWrapSSL:  (*Device).opSockWrapSSL,
	OpSockReset:    (*Device).opSockReset,
}

// execute decodes a REQ payload, runs its op and returns the RESP payload.
func (d *Device) execute(ctx context.Context, payload []byte) []byte {
	result, oe := d.run(ctx, payload)
	var resp map[string]any
	if oe != nil {
		resp = map[string]any{"ok": false, "error": oe.code}
		if oe.detail != "" {
			resp["detail"] = oe.detail
		}
	} else {
		resp = map[string]any{"ok": true, "result": result}
	}
	b, err := Append(nil, resp)
	if err != nil {
		// An op returned something the dialect cannot carry: a bug here;
		// the firmware would die, the emulator answers "exception".
		b, _ = Append(nil, map[string]any{"ok": false, "error": CodeException, "detail": err.Error()})
	}
	return b
}

func (d *Device) run(ctx context.Context, payload []byte) (any, *opError) {
	v, err := Decode(payload)
	if err != nil {
		return nil, fail(CodeException, err.Error())
	}
	req, ok := v.(map[string]any)
	if !ok {
		return nil, fail(CodeException, "request is not a map")
	}
	op, _ := req["op"].(string)
	args, ok := req["args"].(map[string]any)
	if !ok {
		if req["args"] != nil {
			return nil, fail(CodeInvalidParameter, "args")
		}
		args = map[string]any{}
	}
	f, ok := deviceOps[op]
	if !ok {
		return nil, fail(CodeUnknownOp, op)
	}
	d.count(func(s *DeviceStats) { s.Executed[op]++ })
	return f(d, ctx, args)
}

// Argument helpers.

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

// Ops.

func (d *Device) opPing(_ context.Context, args map[string]any) (any, *opError) {
	echo, _ := args["echo"].(string)
	return map[string]any{"pong": true, "t_ms": d.uptime(), "echo": echo}, nil
}

func (d *Device) opGetTime(context.Context, map[string]any) (any, *opError) {
	return map[string]any{"time": time.Now().Unix()}, nil
}

func (d *Device) opWiFiStatus(context.Context, map[string]any) (any, *opError) {
	return map[string]any{
		"connected": true,
		"ifconfig":  Tuple{"127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1"},
	}, nil
}

func (d *Device) opDNS(ctx context.Context, args map[string]any) (any, *opError) {
	host, oe := strArg(args, "host")
	if oe != nil {
		return nil, oe
	}
	if host == "" {
		return nil, fail(CodeMissingHost, "")
	}
	port, oe := intArg(args, "port", defaultDNSPort)
	if oe != nil {
		return nil, oe
	}
	family, oe := intArg(args, "family", 0)
	if oe != nil {
		return nil, oe
	}
	typ, oe := intArg(args, "type", 0)
	if oe != nil {
		return nil, oe
	}
	proto, oe := intArg(args, "proto", 0)
	if oe != nil {
		return nil, oe
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		network := "ip"
		switch family {
		case familyInet:
			network = "ip4"
		case familyInet6:
			network = "ip6"
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err = net.DefaultResolver.LookupNetIP(lctx, network, host)
		cancel()
		if err != nil {
			return nil, fail(CodeDNS, osError(err))
		}
	}
	if typ == 0 {
		typ = sockTypeStream
	}
	list := make([]any, 0, len(addrs))
	for _, a := range addrs {
		a = a.Unmap()
		f := int64(familyInet)
		if a.Is6() {
			f = familyInet6
		}
		if family != 0 && f != family {
			continue
		}
		// getaddrinfo's entries and the address inside are tuples.
		list = append(list, Tuple{f, typ, proto, "", Tuple{a.String(), port}})
	}
	if len(list) == 0 {
		return nil, fail(CodeDNS, "[Errno -202] EAI_FAIL: no address")
	}
	return list, nil
}

func (d *Device) opSockOpen(_ context.Context, args map[string]any) (any, *opError) {
	family, oe := intArg(args, "family", familyInet)
	if oe != nil {
		return nil, oe
	}
	typ, oe := intArg(args, "type", sockTypeStream)
	if oe != nil {
		return nil, oe
	}
	if _, oe := intArg(args, "proto", 0); oe != nil {
		return nil, oe
	}
	if (family != familyInet && family != familyInet6) || (typ != sockTypeStream && typ != sockTypeDgram) {
		return nil, fail(CodeSockOpen, "[Errno 22] EINVAL")
	}
	s := &devSock{typ: typ, family: family}
	if oe := d.add(s); oe != nil {
		return nil, oe
	}
	return map[string]any{"sid": s.id}, nil
}

func (d *Device) opSockSetTimeout(_ context.Context, args map[string]any) (any, *opError) {
	s, oe := d.sock(args)
	if oe != nil {
		return nil, oe
	}
	v, ok := args["timeout_ms"]
	if !ok || v == nil {
		s.timeout = nil
		return true, nil
	}
	ms, ok := asInt(v)
	if !ok || ms < 0 {
		return nil, fail(CodeSockSetTimeout, "timeout_ms")
	}
	t := time.Duration(ms) * time.Millisecond
	s.timeout = &t
	return true, nil
}

func (d *Device) opSockConnect(ctx context.Context, args map[string]any) (any, *opError) {
	s, oe := d.sock(args)
	if oe != nil {
		return nil, oe
	}
	if s.typ != sockTypeStream || s.conn != nil || s.ln != nil {
		return nil, fail(CodeInvalidSIDType, "")
	}
	host, oe := strArg(args, "host")
	if oe != nil {
		return nil, oe
	}
	port, oe := intArg(args, "port", -1)
	if oe != nil {
		return nil, oe
	}
	if host == "" || port < 0 || port > 0xFFFF {
		return nil, fail(CodeMissingHostOrPort, "")
	}
	ssl, _ := args["ssl"].(bool)
	timeout, oe := timeoutArg(args)
	if oe != nil {
		return nil, oe
	}
	ctx, cancel := context.WithTimeout(ctx, max(timeout, time.Millisecond))
	defer cancel()
	ip, err := resolve(ctx, host, s.family)
	if err != nil {
		d.drop(s)
		return nil, fail(CodeDNS, osError(err))
	}
	dialer := net.Dialer{}
	if s.bind != "" {
		if la, err := net.ResolveTCPAddr("tcp", s.bind); err == nil {
			dialer.LocalAddr = la
		}
	}
	c, err := dialer.DialContext(ctx, "tcp", netip.AddrPortFrom(ip, uint16(port)).String())
	if err != nil {
		d.drop(s)
		return nil, fail(CodeSockConnect, osError(err))
	}
	if ssl {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: host})
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			d.drop(s)
			return nil, fail(CodeSockConnect, osError(err))
		}
		c = tc
	}
	if !d.setConn(s, c) {
		return nil, fail(CodeInvalidSID, "")
	}
	return true, nil
}

// setConn stores c in s unless s was closed meanwhile (Reboot).
func (d *Device) setConn(s *devSock, c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.socks[s.id] != s {
		c.Close()
		return false
	}
	s.conn = c
	return true
}

func (d *Device) opSockSend(_ context.Context, args map[string]any) (any, *opError) {
	s, oe := d.sock(args)
	if oe != nil {
		return nil, oe
	}
	data, ok := bytesArg(args, "data")
	if !ok {
		return nil, fail(CodeMissingData, "")
	}
	if s.typ != sockTypeStream {
		return nil, fail(CodeInvalidSIDType, "")
	}
	if s.conn == nil {
		return nil, fail(CodeSockSend, "[Errno 128] ENOTCONN")
	}
	t := d.cfg.SendTimeout
	if s.timeout != nil {
		t = *s.timeout
	}
	s.conn.SetWriteDeadline(time.Now().Add(max(t, time.Millisecond)))
	n, err := s.conn.Write(data)
	if err != nil {
		d.drop(s)
		return nil, fail(CodeSockSend, osError(err))
	}
	return map[string]any{"n": n}, nil
}

func (d *Device) opSockRecv(_ context.Context, args map[string]any) (any, *opError) {
	s, oe := d.sock(args)
	if oe != nil {
		return nil, oe
	}
	n, oe := intArg(args, "n", defaultRecvN)
	if oe != nil {
		return nil, oe
	}
	if n < 0 || n > maxRecvN {
		return nil, fail(CodeInvalidParameter, "n")
	}
	timeout, oe := timeoutArg(args)
	if oe != nil {
		return nil, oe
	}
	if s.typ != sockTypeStream || s.ln != nil {
		return nil, fail(CodeInvalidSIDType, "")
	}
	if s.conn == nil {
		return nil, fail(CodeSockRecv, "[Errno 128] ENOTCONN")
	}
	if cap(d.rbuf) < int(n) {
		d.rbuf = make([]byte, n)
	}
	buf := d.rbuf[:n]
	s.conn.SetReadDeadline(pollDeadline(timeout))
	k, err := s.conn.Read(buf)
	switch {
	case err == nil || k > 0:
		return map[string]any{"data": buf[:k], "n": k, "eof": false}, nil
	case errors.Is(err, io.EOF):
		return map[string]any{"data": []byte{}, "n": 0, "eof": true}, nil
	case isTimeout(err):
		return map[string]any{"data": []byte{}, "n": 0, "eof": false}, nil
	}
	d.drop(s)
	return nil, fail(CodeSockRecv, osError(err))
}

func (d *Device) opSockClose(_ context.Context, args map[string]any) (any, *opError) {
	s, oe := d.sock(args)
	if oe != nil {
		return nil, oe
	}
	d.drop(s)
	return true, nil
}

func (d *Device) opSockBind(_ context.Context, args map[string]any) (any, *opError) {
	s, oe := d.sock(args)
	if oe != nil {
		return nil, oe
	}
	host, oe := strArg(args, "host")
	if oe != nil {
		return nil, oe
	}
	port, oe := intArg(args, "port", -1)
	if oe != nil {
		return nil, oe
	}
	if port < 0 || port > 0xFFFF {
		return nil, fail(CodeMissingHostOrPort, "")
	}
	if host == "" {
		host = "0.0.0.0"
		if s.family == familyInet6 {
			host = "::"
		}
	}
	addr := net.JoinHostPort(host, strconv.FormatInt(port, 10))
	if s.typ == sockTypeStream {
		if s.conn != nil || s.ln != nil {
			return nil, fail(CodeSockBind, "[Errno 22] EINVAL")
		}
		s.bind = addr
		return true, nil
	}
	if s.pc != nil {
		return nil, fail(CodeSockBind, "[Errno 22] EINVAL")
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fail(CodeSockBind, osError(err))
	}
	d.mu.Lock()
	if d.socks[s.id] != s {
		d.mu.Unlock()
		pc.Close()
		return nil, fail(CodeInvalidSID, "")
	}
	s.pc = pc
	d.mu.Unlock()
	return true, nil
}

func (d *Device) opSockListen(_ context.Context, args map[string]any) (any, *opError) {
	s, oe := d.sock(args)
	if oe != nil {
		return nil, oe
	}
	if _, oe := intArg(args, "backlog", defaultBacklog); oe != nil {
		return nil, oe
	}
	if s.typ != sockTypeStream || s.conn != nil {
		return nil, fail(CodeInvalidSIDType, "")
	}
	if s.ln != nil {
		return true, nil
	}
	addr := s.bind
	if addr == "" {
		addr = "0.0.0.0:0"
	}
	ln, err := net.Listen("tcp", addr) // Go sets SO_REUSEADDR, as the seed does
	if err != nil {
		return nil, fail(CodeSockListen, osError(err))
	}
	d.mu.Lock()
	if d.socks[s.id] != s {
		d.mu.Unlock()
		ln.Close()
		return nil, fail(CodeInvalidSID, "")
	}
	s.ln = ln
	d.mu.Unlock()
	return true, nil
}

func (d *Device) opSockAccept(_ context.Context, args map[string]any) (any, *opError) {
	s, oe := d.sock(args)
	if oe != nil {
		return nil, oe
	}
	timeout, oe := timeoutArg(args)
	if oe != nil {
		return nil, oe
	}
	tl, ok := s.ln.(*net.TCPListener)
	if !ok {
		return nil, fail(CodeInvalidSIDType, "")
	}
	tl.SetDeadline(pollDeadline(timeout))
	c, err := tl.Accept()
	if err != nil {
		return nil, fail(CodeSockAccept, osError(err))
	}
	ns := &devSock{typ: sockTypeStream, family: s.family, conn: c}
	if oe := d.add(ns); oe != nil {
		c.Close()
		return nil, fail(CodeSockAccept, oe.detail)
	}
	return map[string]any{"sid": ns.id, "addr": addrTuple(c.RemoteAddr())}, nil
}

func (d *Device) opSockSendTo(ctx context.Context, args map[string]any) (any, *opError) {
	s, oe := d.sock(args)
	if oe != nil {
		return nil, oe
	}
	data, ok := bytesArg(args, "data")
	if !ok {
		return nil, fail(CodeMissingData, "")
	}
	host, oe := strArg(args, "host")
	if oe != nil {
		return nil, oe
	}
	port, oe := intArg(args, "port", -1)
	if oe != nil {
		return nil, oe
	}
	if host == "" || port < 0 || port > 0xFFFF {
		return nil, fail(CodeMissingHostOrPort, "")
	}
	if s.typ != sockTypeDgram {
		return nil, fail(CodeInvalidSIDType, "")
	}
	ip, err := resolve(ctx, host, s.family)
	if err != nil {
		return nil, fail(CodeDNS, osError(err))
	}
	if s.pc == nil {
		pc, err := net.ListenPacket("udp", ":0")
		if err != nil {
			return nil, fail(CodeSockSendTo, osError(err))
		}
		d.mu.Lock()
		if d.socks[s.id] != s {
			d.mu.Unlock()
			pc.Close()
			return nil, fail(CodeInvalidSID, "")
		}
		s.pc = pc
		d.mu.Unlock()
	}
	n, err := s.pc.WriteTo(data, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
	if err != nil {
		return nil, fail(CodeSockSendTo, osError(err))
	}
	return map[string]any{"n": n}, nil
}

func (d *Device) opSockRecvFrom(ctx context.Context, args map[string]any) (any, *opError) {
	s, oe := d.sock(args)
	if oe != nil {
		return nil, oe
	}
	n, oe := intArg(args, "n", defaultRecvN)
	if oe != nil {
		return nil, oe
	}
	if n < 0 || n > maxRecvN {
		return nil, fail(CodeInvalidParameter, "n")
	}
	timeout, oe := timeoutArg(args)
	if oe != nil {
		return nil, oe
	}
	if s.typ != sockTypeDgram {
		return nil, fail(CodeInvalidSIDType, "")
	}
	if s.pc == nil {
		// Not bound yet: nothing can arrive; the firmware waits out the
		// timeout.
		t := time.NewTimer(timeout)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		return nil, fail(CodeSockRecvFrom, "[Errno 110] ETIMEDOUT")
	}
	if cap(d.rbuf) < int(n) {
		d.rbuf = make([]byte, n)
	}
	buf := d.rbuf[:n]
	s.pc.SetReadDeadline(pollDeadline(timeout))
	k, from, err := s.pc.ReadFrom(buf)
	if err != nil {
		return nil, fail(CodeSockRecvFrom, osError(err))
	}
	return map[string]any{"data": buf[:k], "n": k, "addr": addrTuple(from)}, nil
}

func (d *Device) opSockWrapSSL(ctx context.Context, args map[string]any) (any, *opError) {
	s, oe := d.sock(args)
	if oe != nil {
		return nil, oe
	}
	name, oe := strArg(args, "server_hostname")
	if oe != nil {
		return nil, oe
	}
	if s.typ != sockTypeStream || s.conn == nil {
		return nil, fail(CodeInvalidSIDType, "")
	}
	if _, ok := s.conn.(*tls.Conn); ok {
		return nil, fail(CodeSockWrapSSL, "already wrapped")
	}
	t := time.Duration(defaultOpTimeMS) * time.Millisecond
	if s.timeout != nil {
		t = *s.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, max(t, time.Millisecond))
	defer cancel()
	// The seed cannot verify certificates; neither does its emulator.
	tc := tls.Client(s.conn, &tls.Config{InsecureSkipVerify: true, ServerName: name})
	if err := tc.HandshakeContext(ctx); err != nil {
		d.drop(s)
		return nil, fail(CodeSockWrapSSL, osError(err))
	}
	if !d.setConn(s, tc) {
		return nil, fail(CodeInvalidSID, "")
	}
	return true, nil
}

func (d *Device) opSockReset(context.Context, map[string]any) (any, *opError) {
	d.mu.Lock()
	d.closeAllLocked()
	d.mu.Unlock()
	return true, nil
}

package seedv3

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
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
	n, timeout, oe := recvArgs(args)
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
	n, timeout, oe := recvArgs(args)
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

package emulator

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

	"github.com/fxamacker/cbor/v2"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/mux"
)

// handler serves the host's OPENs and REQUESTs with real sockets.
type handler struct {
	d    *Device
	sess *mux.Session
}

func (h *handler) ServeOpen(st *mux.Stream, req mux.OpenRequest) {
	switch req.Kind {
	case message.KindTCP:
		h.serveTCP(st, req)
	case message.KindUDP:
		h.serveUDP(st, req)
	case message.KindListen:
		h.serveListen(st, req)
	case message.KindService:
		h.serveService(st, req)
	default:
		st.Reject(message.CodeUnsupported, "unknown kind")
	}
}

func hostPort(host string, port uint16) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

func addrFrom(a net.Addr) mux.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return mux.Addr{Net: a.Network()}
	}
	return mux.Addr{Net: a.Network(), Host: ap.Addr().Unmap().String(), Port: ap.Port()}
}

// codeOf maps a socket error to a protocol code (docs/protocol.md §10).
func codeOf(err error) message.Code {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return message.CodeDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return message.CodeRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return message.CodeUnreachable
	case errors.Is(err, syscall.EADDRINUSE):
		return message.CodeInUse
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return message.CodeDenied
	case errors.Is(err, syscall.ECONNRESET):
		return message.CodeReset
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return message.CodeTimeout
	}
	var tlsErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	if errors.As(err, &tlsErr) || errors.As(err, &recErr) {
		return message.CodeTLS
	}
	return message.CodeInternal
}

func (h *handler) serveTCP(st *mux.Stream, req mux.OpenRequest) {
	timeout := h.d.cfg.ConnectTimeout
	if req.Opts.TimeoutMS > 0 {
		timeout = time.Duration(req.Opts.TimeoutMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := h.d.cfg.Dialer.DialContext(ctx, "tcp", hostPort(req.Host, req.Port))
	if err != nil {
		st.Reject(codeOf(err), err.Error())
		return
	}
	if req.Opts.TLS {
		tc := tls.Client(conn, h.tlsConfig(req))
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			st.Reject(message.CodeTLS, err.Error())
			return
		}
		conn = tc
	}
	if err := st.Accept(addrFrom(conn.LocalAddr())); err != nil {
		conn.Close()
		return
	}
	pipe(st, conn)
}

func (h *handler) tlsConfig(req mux.OpenRequest) *tls.Config {
	c := &tls.Config{ServerName: req.Opts.SNI, InsecureSkipVerify: !req.Opts.VerifyCert()}
	if c.ServerName == "" {
		c.ServerName = req.Host
	}
	c.RootCAs = h.d.cfg.RootCAs // nil: the system pool
	return c
}

// pipe copies both ways between a stream and a socket, passing half-closes
// through, and resets the stream if the socket fails.
func pipe(st *mux.Stream, conn net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := io.Copy(conn, st)
		if err != nil {
			conn.Close() // the stream was reset: abort the socket
			return
		}
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	_, err := io.Copy(st, conn)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		st.Reset(codeOf(err), err.Error())
	} else {
		st.CloseWrite()
	}
	<-done
	conn.Close()
	st.Close()
}

func (h *handler) serveUDP(st *mux.Stream, req mux.OpenRequest) {
	bind := ":0"
	if req.Host != "" || req.Port != 0 {
		bind = hostPort(req.Host, req.Port)
	}
	pc, err := net.ListenPacket("udp", bind)
	if err != nil {
		st.Reject(codeOf(err), err.Error())
		return
	}
	if err := st.Accept(addrFrom(pc.LocalAddr())); err != nil {
		pc.Close()
		return
	}
	spc := st.PacketConn()
	done := make(chan struct{})
	go func() { // socket → host
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if _, err := spc.WriteTo(buf[:n], addrFrom(from)); err != nil {
				if errors.Is(err, mux.ErrTooLarge) {
					continue // a radio drops what it cannot carry
				}
				return
			}
		}
	}()
	buf := make([]byte, 65536)
	for { // host → socket
		n, to, err := spc.ReadFrom(buf)
		if err != nil {
			break
		}
		a := to.(mux.Addr)
		ua, err := net.ResolveUDPAddr("udp", hostPort(a.Host, a.Port))
		if err != nil {
			continue
		}
		pc.WriteTo(buf[:n], ua)
	}
	pc.Close()
	<-done
	st.Close()
}

func (h *handler) serveListen(st *mux.Stream, req mux.OpenRequest) {
	ln, err := net.Listen("tcp", hostPort(req.Host, req.Port))
	if err != nil {
		st.Reject(codeOf(err), err.Error())
		return
	}
	if err := st.Accept(addrFrom(ln.Addr())); err != nil {
		ln.Close()
		return
	}
	go func() { // the host closing the listener ends it
		io.Copy(io.Discard, st)
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		child, err := h.sess.PushAccept(st, addrFrom(c.RemoteAddr()))
		if err != nil {
			c.Close()
			continue
		}
		go pipe(child, c)
	}
	st.Close()
}

func (h *handler) serveService(st *mux.Stream, req mux.OpenRequest) {
	switch req.Host {
	case message.ServiceEcho, message.ServiceDiscard, message.ServiceSource:
	default:
		st.Reject(message.CodeUnsupported, "unknown service "+strconv.Quote(req.Host))
		return
	}
	if st.Accept(mux.Addr{Net: "tcp", Host: req.Host}) != nil {
		return
	}
	defer st.Close()
	switch req.Host {
	case message.ServiceEcho:
		if _, err := io.Copy(st, st); err == nil {
			st.CloseWrite()
		}
	case message.ServiceDiscard:
		io.Copy(io.Discard, st)
		st.CloseWrite()
	case message.ServiceSource:
		go func() { // a FIN or RESET from the host ends the source
			io.Copy(io.Discard, st)
			st.CloseWrite()
		}()
		buf := make([]byte, 251*16)
		for i := range buf {
			buf[i] = message.SourceByte(uint64(i))
		}
		for {
			if _, err := st.Write(buf); err != nil {
				return
			}
		}
	}
}

func (h *handler) ServeRequest(ctx context.Context, op message.Op, args cbor.RawMessage) (any, message.Code) {
	switch op {
	case message.OpResolve:
		var a struct {
			_      struct{} `cbor:",toarray"`
			Name   string
			Family int
		}
		if err := message.Unmarshal(args, &a); err != nil {
			return "bad arguments", message.CodeProtocol
		}
		network := map[int]string{0: "ip", 4: "ip4", 6: "ip6"}[a.Family]
		if network == "" {
			return "bad family", message.CodeProtocol
		}
		addrs, err := h.d.cfg.Resolver.LookupNetIP(ctx, network, a.Name)
		if err != nil {
			return err.Error(), message.CodeDNS
		}
		out := make([]string, len(addrs))
		for i, a := range addrs {
			out[i] = a.Unmap().String()
		}
		return out, message.CodeOK
	case message.OpInfo:
		return h.d.info(), message.CodeOK
	case message.OpEcho:
		var b []byte
		if err := message.Unmarshal(args, &b); err != nil {
			return "bad arguments", message.CodeProtocol
		}
		return b, message.CodeOK
	case message.OpSetBaud:
		var a []int64
		if err := message.Unmarshal(args, &a); err != nil || len(a) < 2 || len(a) > 3 {
			return "bad arguments", message.CodeProtocol
		}
		flow := -1 // unchanged
		if len(a) == 3 {
			if a[2] != 0 && a[2] != 1 {
				return "flow must be 0 or 1", message.CodeProtocol
			}
			flow = int(a[2])
		}
		return h.d.setBaud(int(a[0]), time.Duration(a[1])*time.Millisecond, flow)
	case message.OpBaudCommit:
		return h.d.commitBaud()
	}
	return "unknown op", message.CodeUnsupported
}

// info reports emulated device state; free memory shrinks with open
// streams the way the firmware's heap does.
func (d *Device) info() message.Info {
	sess := d.Session()
	open := sess.Stats().StreamsOpen
	free := uint64(160<<10) - uint64(max(open, 0))*uint64(d.cfg.StreamWindow+2048)
	wifi := uint8(message.WiFiUp)
	rssi := -48
	uptime := uint64(time.Since(d.boot).Milliseconds())
	return message.Info{
		Firmware: d.cfg.Firmware, Model: d.cfg.Model, FreeMem: &free, WiFi: &wifi, RSSI: &rssi,
		IP: "127.0.0.1", UptimeMS: &uptime, SSID: "emulated",
	}
}

package seedv3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Opening device sockets, run by the scheduler as jobs.

// abandonSID closes a socket an open gave up on.
func (n *Net) abandonSID(sid int64) {
	if n.ctx.Err() == nil {
		n.call(n.ctx, OpSockClose, map[string]any{"sid": sid})
	}
}

// openSID runs sock_open and returns the new sid.
func (n *Net) openSID(ctx context.Context, family, typ int64) (int64, error) {
	if err := n.ensureReset(ctx); err != nil {
		return 0, err
	}
	r, err := n.call(ctx, OpSockOpen, map[string]any{"family": family, "type": typ})
	if err != nil {
		return 0, err
	}
	m, _ := r.(map[string]any)
	sid, ok := asInt(m["sid"])
	if !ok {
		return 0, fmt.Errorf("%w: sock_open: no sid in %v", ErrBadResponse, r)
	}
	n.claimSID(sid)
	return sid, nil
}

func (n *Net) doDial(ctx context.Context, network, host string, port int, serverName string, useTLS bool) (*Conn, error) {
	sid, err := n.openSID(ctx, familyFor(network, host), sockTypeStream)
	if err != nil {
		return nil, err
	}
	timeout := n.cfg.ConnectTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	_, err = n.call(ctx, OpSockConnect, map[string]any{
		"sid": sid, "host": host, "port": port, "timeout_ms": max(timeout.Milliseconds(), 1),
	})
	if err == nil && useTLS {
		_, err = n.call(ctx, OpSockWrapSSL, map[string]any{"sid": sid, "server_hostname": serverName})
		if err != nil && !errors.Is(err, ctx.Err()) {
			n.abandonSID(sid) // the firmware may keep the plain socket
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		// A failed connect closed the socket on the device; one we gave
		// up on may still be there.
		if ctx.Err() != nil {
			n.abandonSID(sid)
		}
		n.count(func(st *NetStats) { st.DialErrors++ })
		return nil, err
	}
	s := n.addSock(sid, kindConn)
	s.tls = useTLS
	n.count(func(st *NetStats) { st.Dials++ })
	return &Conn{s: s, local: &net.TCPAddr{IP: net.IPv4zero}, remote: remoteAddr(network, host, port)}, nil
}

func (n *Net) doListen(ctx context.Context, network, host string, port int) (*Listener, error) {
	sid, err := n.openSID(ctx, familyFor(network, host), sockTypeStream)
	if err != nil {
		return nil, err
	}
	if _, err = n.call(ctx, OpSockBind, map[string]any{"sid": sid, "host": host, "port": port}); err == nil {
		_, err = n.call(ctx, OpSockListen, map[string]any{"sid": sid, "backlog": defaultBacklog})
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		n.abandonSID(sid)
		return nil, err
	}
	s := n.addSock(sid, kindListener)
	s.addr = tcpAddr(host, port)
	return &Listener{s: s, addr: s.addr}, nil
}

func (n *Net) doListenPacket(ctx context.Context, network, host string, port int, bind bool) (*PacketConn, error) {
	sid, err := n.openSID(ctx, familyFor(network, host), sockTypeDgram)
	if err != nil {
		return nil, err
	}
	if bind {
		_, err = n.call(ctx, OpSockBind, map[string]any{"sid": sid, "host": host, "port": port})
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		n.abandonSID(sid)
		return nil, err
	}
	s := n.addSock(sid, kindPacket)
	ua := net.UDPAddrFromAddrPort(netip.AddrPortFrom(ipOr0(host), uint16(port)))
	return &PacketConn{s: s, local: ua}, nil
}

// listenerAddr is the local address of connections a listener accepts.
func (n *Net) listenerAddr(s *sock) net.Addr { return s.addr }

// Result helpers.

func bytesOf(v any) []byte {
	switch v := v.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return nil
}

// addrPortOf reads an address (ip, port).
func addrPortOf(v any) (netip.AddrPort, bool) {
	t, ok := v.([]any)
	if !ok || len(t) < 2 {
		return netip.AddrPort{}, false
	}
	ip, _ := t[0].(string)
	port, ok := asInt(t[1])
	a, err := netip.ParseAddr(ip)
	if err != nil || !ok || port < 0 || port > 0xFFFF {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

func tcpAddrOf(v any) net.Addr {
	if ap, ok := addrPortOf(v); ok {
		return net.TCPAddrFromAddrPort(ap)
	}
	return &net.TCPAddr{IP: net.IPv4zero}
}

func udpAddrOf(v any) *net.UDPAddr {
	if ap, ok := addrPortOf(v); ok {
		return net.UDPAddrFromAddrPort(ap)
	}
	return nil
}

func ipOr0(host string) netip.Addr {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap()
	}
	return netip.IPv4Unspecified()
}

func tcpAddr(host string, port int) *net.TCPAddr {
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ipOr0(host), uint16(port)))
}

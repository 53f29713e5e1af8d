package mux

import (
	"net"
	"net/netip"
	"strconv"
)

// Addr is an address on the device's side of the world. Host may be a
// name the device resolves.
type Addr struct {
	Net  string // "tcp" or "udp"
	Host string
	Port uint16
}

func (a Addr) Network() string { return a.Net }
func (a Addr) String() string  { return net.JoinHostPort(a.Host, strconv.Itoa(int(a.Port))) }

// UDPAddr returns a as a *net.UDPAddr when Host is an IP literal.
func (a Addr) UDPAddr() (*net.UDPAddr, bool) {
	ip, err := netip.ParseAddr(a.Host)
	if err != nil {
		return nil, false
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, a.Port)), true
}

// splitHostPort parses "host:port" with a numeric port.
func splitHostPort(s string) (string, uint16, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, &net.AddrError{Err: "invalid port", Addr: s}
	}
	return host, uint16(port), nil
}

// addrOf converts any net.Addr into host and port.
func addrOf(a net.Addr) (string, uint16, error) {
	switch a := a.(type) {
	case Addr:
		return a.Host, a.Port, nil
	case *Addr:
		return a.Host, a.Port, nil
	case *net.UDPAddr:
		ap := a.AddrPort()
		return ap.Addr().Unmap().String(), ap.Port(), nil
	}
	return splitHostPort(a.String())
}

package socks5

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/things-go/go-socks5/statute"
)

// associate carries out UDP ASSOCIATE (RFC 1928 §7): one UDP socket on the
// device for the whole association, and a relay socket here on the address
// the client reached us at. hint is the request's address: the port the
// client will send from, or 0.
func (ss *session) associate(hint statute.AddrSpec) {
	cfg := &ss.srv.cfg
	dest := hint.String()
	if cfg.ListenPacket == nil {
		ss.reject(cmdAssociate, repCommandNotSupported, dest, errors.New("no ListenPacket configured"))
		return
	}
	local, ok1 := ss.conn.LocalAddr().(*net.TCPAddr)
	client, ok2 := ss.conn.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		ss.reject(cmdAssociate, repGeneralFailure, dest, errors.New("client connection is not TCP"))
		return
	}
	relay, err := net.ListenUDP("udp", &net.UDPAddr{IP: local.IP, Zone: local.Zone})
	if err != nil {
		ss.reject(cmdAssociate, repGeneralFailure, dest, err)
		return
	}
	defer relay.Close()
	ctx, cancel := context.WithTimeout(ss.ctx, cfg.ConnectTimeout)
	dev, err := cfg.ListenPacket(ctx, "udp", "")
	cancel()
	if err == nil && dev == nil {
		err = errors.New("no socket from Config.ListenPacket")
	}
	if err != nil {
		ss.reject(cmdAssociate, replyFor(err), dest, err)
		return
	}
	defer dev.Close()
	err = ss.reply(repSucceeded, relay.LocalAddr())
	ss.done(cmdAssociate, repSucceeded, dest, err)
	if err != nil {
		return
	}

	a := &association{
		ss:       ss,
		relay:    relay,
		dev:      dev,
		clientIP: client.IP,
		start:    time.Now(),
		dests:    map[string]net.Addr{},
		log:      ss.log.With().Stringer("relay", relay.LocalAddr()).Logger(),
	}
	if hint.Port != 0 {
		a.client.Store(&net.UDPAddr{IP: client.IP, Port: hint.Port, Zone: client.Zone})
	}
	a.run()
}

// association is one UDP ASSOCIATE, run by its session's goroutine.
type association struct {
	ss       *session
	relay    *net.UDPConn   // here, for the client
	dev      net.PacketConn // on the device, for every destination
	clientIP net.IP
	// client is where datagrams for the client go: the request's port, or
	// the source port of the first valid datagram; nil until known.
	client atomic.Pointer[net.UDPAddr]
	start  time.Time
	last   atomic.Int64        // time.Since(start) of the last datagram relayed
	dests  map[string]net.Addr // "host:port" -> device address, nil if denied; up only
	log    zerolog.Logger
}

func (a *association) touch() { a.last.Store(int64(time.Since(a.start))) }

// run relays until the control connection closes, a socket fails or the
// association is idle for UDPIdleTimeout.
func (a *association) run() {
	ctx, cancel := context.WithCancel(a.ss.ctx)
	defer cancel()
	var why string
	var once sync.Once
	end := func(reason string) {
		once.Do(func() { why = reason })
		cancel()
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		end("client socket: " + errString(a.up(ctx)))
	}()
	go func() {
		defer wg.Done()
		end("device socket: " + errString(a.down()))
	}()
	go func() {
		defer wg.Done()
		// The control connection carries nothing more; what a client
		// sends anyway is discarded.
		_, err := io.Copy(io.Discard, a.ss.br)
		end("control connection: " + errString(err))
	}()

	idle := a.ss.srv.cfg.UDPIdleTimeout
	t := time.NewTimer(idle)
	defer t.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			end("session ended")
			break loop
		case <-t.C:
			quiet := time.Since(a.start) - time.Duration(a.last.Load())
			if quiet >= idle {
				end("idle")
				break loop
			}
			t.Reset(idle - quiet)
		}
	}
	a.relay.Close()
	a.dev.Close()
	a.ss.conn.SetReadDeadline(time.Now())
	wg.Wait()
	a.log.Debug().Str("why", why).Msg("socks5: association ended")
}

func errString(err error) string {
	if err == nil {
		return "EOF"
	}
	return err.Error()
}

// up relays datagrams from the client to the device. It accepts them only
// from the client's IP and port, drops fragments (FRAG != 0) and what the
// rules deny, and hands names to the device unresolved.
func (a *association) up(ctx context.Context) error {
	buf := make([]byte, udpBuffer)
	for {
		n, src, err := a.relay.ReadFromUDP(buf)
		if err != nil {
			return err
		}
		if !src.IP.Equal(a.clientIP) {
			a.drop(dropForeignSource, src, nil)
			continue
		}
		client := a.client.Load()
		if client != nil && client.Port != src.Port {
			a.drop(dropForeignPort, src, nil)
			continue
		}
		d, err := statute.ParseDatagram(buf[:n])
		if err != nil {
			a.drop(dropBadHeader, src, err)
			continue
		}
		if d.Frag != 0 {
			a.drop(dropFragment, src, nil)
			continue
		}
		if client == nil {
			a.client.Store(src)
		}
		to := a.destination(ctx, d.DstAddr)
		if to == nil {
			continue
		}
		a.touch()
		if _, err := a.dev.WriteTo(d.Data, to); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			a.drop(dropDeviceWrite, to, err)
			continue
		}
		a.ss.srv.stats.bytesUp.Add(uint64(len(d.Data)))
	}
}

// destination returns the device address for a datagram's destination,
// asking Allow once per destination; nil drops the datagram.
func (a *association) destination(ctx context.Context, spec statute.AddrSpec) net.Addr {
	host := spec.FQDN
	if host == "" && len(spec.IP) != 0 {
		host = spec.IP.String()
	}
	if host == "" || spec.Port <= 0 || spec.Port > 0xffff {
		a.drop(dropNoDestination, hostPortAddr(spec.String()), nil)
		return nil
	}
	key := net.JoinHostPort(host, strconv.Itoa(spec.Port))
	if to, ok := a.dests[key]; ok {
		if to == nil {
			a.drop(dropDenied, hostPortAddr(key), nil)
		}
		return to
	}
	address, err := a.ss.allow(cmdAssociate, host, uint16(spec.Port))
	if err != nil {
		if replyFor(err) == repNotAllowed {
			a.remember(key, nil)
		}
		a.drop(dropDenied, hostPortAddr(key), err)
		return nil
	}
	to := deviceAddr(address)
	a.remember(key, to)
	return to
}

func (a *association) remember(key string, to net.Addr) {
	if len(a.dests) >= udpAllowCache {
		clear(a.dests)
	}
	a.dests[key] = to
}

// deviceAddr is the address to write to: a *net.UDPAddr for an IP
// literal, so that a real *net.UDPConn accepts it, else the name for the
// device to resolve.
func deviceAddr(address string) net.Addr {
	host, ps, err := net.SplitHostPort(address)
	if err != nil {
		return hostPortAddr(address)
	}
	ip := net.ParseIP(host)
	port, err := strconv.ParseUint(ps, 10, 16)
	if ip == nil || err != nil {
		return hostPortAddr(address)
	}
	return &net.UDPAddr{IP: ip, Port: int(port)}
}

// hostPortAddr is a UDP address "host:port" whose host may be a name.
type hostPortAddr string

func (a hostPortAddr) Network() string { return "udp" }
func (a hostPortAddr) String() string  { return string(a) }

// down relays datagrams from the device to the client, each behind a SOCKS
// UDP header naming its source.
func (a *association) down() error {
	buf := make([]byte, udpHeaderRoom+udpBuffer)
	for {
		n, from, err := a.dev.ReadFrom(buf[udpHeaderRoom:])
		if err != nil {
			return err
		}
		client := a.client.Load()
		if client == nil {
			a.drop(dropClientUnknown, from, nil)
			continue
		}
		d := statute.Datagram{DstAddr: addrSpec(from)}
		hdr := d.Header()
		start := udpHeaderRoom - len(hdr)
		copy(buf[start:], hdr)
		a.touch()
		if _, err := a.relay.WriteToUDP(buf[start:udpHeaderRoom+n], client); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			a.drop(dropClientWrite, client, err)
			continue
		}
		a.ss.srv.stats.bytesDown.Add(uint64(n))
	}
}

func (a *association) drop(why dropReason, addr net.Addr, err error) {
	a.ss.srv.stats.udpDropped[why].Add(1)
	if e := a.log.Debug(); e.Enabled() {
		e.Err(err).Stringer("why", why).Stringer("addr", addr).Msg("socks5: datagram dropped")
	}
}

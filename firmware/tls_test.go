package firmware_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/mux"
)

// `uartproxy serve` has no TLS front end (its forwards and SOCKS5 carry
// plain TCP), so the firmware's TLS is tested here with the host's own
// link and mux packages driving the firmware over a pty: OPEN with tls,
// sni and verify, as any host-side user of mux.DialStream sends it.

// testPKI is a CA, a server certificate it signed for localhost and
// 127.0.0.1, and a self-signed certificate nobody trusts.
type testPKI struct {
	caPEM        []byte
	good, rogue  tls.Certificate
	goodNameOnly string
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "uartproxy test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, serial int64) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	return &testPKI{
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		good:  leaf(ca, caKey, 2),
		rogue: leaf(nil, nil, 3),
	}
}

// tlsServer answers "pong:" + what it reads, once per connection.
func tlsServer(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 64)
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				c.Write(append([]byte("pong:"), buf[:n]...))
			}()
		}
	}()
	return ln.Addr().String()
}

// hostSession is the host side (link + mux) on the master of a pty.
func hostSession(t *testing.T, port io.ReadWriteCloser) (*mux.Session, *link.Link) {
	t.Helper()
	sess := mux.New(mux.Config{Role: message.RoleHost})
	lc := link.DefaultConfig()
	lc.NoFlowControl = true
	lc.Hello.Baud = 921600
	l, err := link.New(port, lc, sess)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); sess.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := sess.WaitUp(ctx); err != nil {
		t.Fatalf("the firmware never came up: %v", err)
	}
	return sess, l
}

func resetCode(err error) message.Code {
	var re *mux.ResetError
	if errors.As(err, &re) {
		return re.Code
	}
	return 255
}

// TestHostMuxThroughFirmware drives the firmware with the host's link and
// mux: TLS with and without verification against a CA bundle on the
// device, the device's requests (INFO, RESOLVE, ECHO), its echo service,
// and a device reboot seen as a new session.
func TestHostMuxThroughFirmware(t *testing.T) {
	needPython(t)
	pki := newPKI(t)
	p := newPty(t)
	cfg := map[string]any{"ssid": "lab", "password": "x", "flow": "none", "model": "esp32c3", "ca_file": "ca.pem"}
	dev := startFirmware(t, p.path, cfg, map[string][]byte{"ca.pem": pki.caPEM})
	sess, _ := hostSession(t, p.master)
	peer, _ := sess.Peer()
	if want := uint(message.FeaturesAll); uint(peer.Peer.Features) != want {
		t.Errorf("device features %d, want all (%d) with a CA bundle", peer.Peer.Features, want)
	}
	good, rogue := tlsServer(t, pki.good), tlsServer(t, pki.rogue)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	dial := func(addr, name string, verify bool) (string, error) {
		st, err := sess.DialStream(ctx, "tcp", addr, mux.DialOptions{
			TLS: &mux.TLSOptions{ServerName: name, Verify: verify}, ConnectTimeout: 5 * time.Second})
		if err != nil {
			return "", err
		}
		defer st.Close()
		st.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := st.Write([]byte("ping")); err != nil {
			return "", err
		}
		b, err := io.ReadAll(st)
		return string(b), err
	}
	t.Run("tls_verified", func(t *testing.T) {
		got, err := dial(good, "localhost", true)
		if err != nil || got != "pong:ping" {
			t.Fatalf("got %q, %v", got, err)
		}
	})
	t.Run("tls_untrusted_refused", func(t *testing.T) {
		_, err := dial(rogue, "localhost", true)
		if resetCode(err) != message.CodeTLS {
			t.Fatalf("want RESET code 5 (tls), got %v", err)
		}
	})
	t.Run("tls_wrong_name_refused", func(t *testing.T) {
		_, err := dial(good, "wrong.example", true)
		if resetCode(err) != message.CodeTLS {
			t.Fatalf("want RESET code 5 (tls), got %v", err)
		}
	})
	t.Run("tls_unverified", func(t *testing.T) {
		got, err := dial(rogue, "localhost", false)
		if err != nil || got != "pong:ping" {
			t.Fatalf("got %q, %v", got, err)
		}
	})
	t.Run("connect_refused", func(t *testing.T) {
		_, err := sess.DialStream(ctx, "tcp", "127.0.0.1:1", mux.DialOptions{ConnectTimeout: 5 * time.Second})
		if resetCode(err) != message.CodeRefused {
			t.Fatalf("want RESET code 1 (refused), got %v", err)
		}
	})
	t.Run("requests", func(t *testing.T) {
		info, err := sess.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Firmware == "" || info.Model != "esp32c3" || info.FreeMem == nil || info.WiFi == nil ||
			*info.WiFi != message.WiFiUp || info.IP != "127.0.0.1" || info.UptimeMS == nil || info.SSID != "lab" {
			t.Errorf("INFO %+v", info)
		}
		addrs, err := sess.Resolve(ctx, "localhost", 4)
		if err != nil || len(addrs) == 0 || addrs[0] != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("RESOLVE localhost: %v %v", addrs, err)
		}
		if _, err := sess.Resolve(ctx, "nonexistent.invalid", 0); err == nil {
			t.Error("RESOLVE of an invalid name succeeded")
		}
		p := []byte("\x00\xc0\xdb\xff echo")
		if got, err := sess.Echo(ctx, p); err != nil || !bytes.Equal(got, p) {
			t.Errorf("ECHO: %q %v", got, err)
		}
	})
	t.Run("echo_service", func(t *testing.T) {
		st, err := sess.OpenService(ctx, "echo")
		if err != nil {
			t.Fatal(err)
		}
		data := randomBytes(100<<10, 3)
		go func() { st.Write(data); st.CloseWrite() }()
		st.SetReadDeadline(time.Now().Add(30 * time.Second))
		got, err := io.ReadAll(st)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("echo: %d of %d bytes, %v", len(got), len(data), err)
		}
	})
	t.Run("reboot_is_a_new_session", func(t *testing.T) {
		before, _ := sess.Peer()
		dev.stop()
		startFirmware(t, p.path, cfg, map[string][]byte{"ca.pem": pki.caPEM})
		deadline := time.Now().Add(10 * time.Second)
		for {
			now, up := sess.Peer()
			if up && now.Peer.Session != before.Peer.Session {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the host never saw the device's new session")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := sess.Echo(ctx, []byte("after reboot")); err != nil {
			t.Fatal(err)
		}
	})
}

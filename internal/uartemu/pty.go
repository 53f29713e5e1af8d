package uartemu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"
)

// ptyBufSize is the chunk the bridge moves between the pty and the cable.
const ptyBufSize = 4096

// PTY presents the host end of an emulated cable as a pseudo-terminal, so a
// program opens it by path like a USB-serial adapter while the test or the
// emulated device uses Device().
//
// Bytes the host writes into the slave are paced host→device and read from
// Device(); bytes written to Device() are paced device→host and then read by
// the host from the slave. The host end follows the baud rate the host sets
// on the pty (checked every 20 ms), as a USB adapter does: a host at another
// rate than the device hears garbage, and a baud switch (docs/protocol.md
// §5.7) works through the real serial code path. Bytes the device sends
// while no program has the slave open wait in the pty (a few KiB) and go to
// the next program that opens it.
//
// PTY keeps its own descriptor of the slave open until Close, so the pty
// never hangs up between a host's close and its next open.
type PTY struct {
	master *os.File
	slave  *os.File
	path   string
	link   string
	host   *Port
	device *Port

	wg        sync.WaitGroup
	stop      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// NewPTY opens a pseudo-terminal in raw mode and bridges it to a cable
// configured by cfg. If linkPath is not empty, it is made a symlink to the
// slave device, replacing an existing symlink but never another file.
func NewPTY(cfg Config, linkPath string) (*PTY, error) {
	master, slave, err := openRawPTY()
	if err != nil {
		return nil, fmt.Errorf("uartemu: open pty: %w", err)
	}
	p := &PTY{master: master, slave: slave, path: slave.Name(), stop: make(chan struct{})}
	if linkPath != "" {
		if err := replaceSymlink(p.path, linkPath); err != nil {
			master.Close()
			slave.Close()
			return nil, err
		}
		p.link = linkPath
	}
	p.host, p.device = New(cfg)
	p.wg.Add(3)
	go p.masterToCable()
	go p.cableToMaster()
	initial, _ := ptyBaud(slave) // before anyone can open the slave
	go p.followBaud(cfg.HostToDevice.Baud > 0 && cfg.DeviceToHost.Baud > 0, initial)
	return p, nil
}

// Path returns the slave device path, such as /dev/pts/7.
func (p *PTY) Path() string { return p.path }

// Link returns the symlink made by NewPTY, or "" if none.
func (p *PTY) Link() string { return p.link }

// Device returns the device end of the cable. PTY.Close closes it too.
func (p *PTY) Device() *Port { return p.device }

// Close removes the symlink (if it still points at this pty), stops the
// bridge, closes both ends of the cable and the pty. It is idempotent and
// returns the first error of the first call.
func (p *PTY) Close() error {
	p.closeOnce.Do(func() {
		var errs []error
		if p.link != "" {
			if target, err := os.Readlink(p.link); err == nil && target == p.path {
				if err := os.Remove(p.link); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
			}
		}
		close(p.stop)
		p.host.Close()
		errs = append(errs, p.master.Close())
		p.wg.Wait()
		errs = append(errs, p.slave.Close())
		p.device.Close()
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// followBaud sets the host end's rate to what the host last set on the
// pty. The rate the pty has when the bridge starts is not a choice of the
// host's and is ignored.
func (p *PTY) followBaud(paced bool, initial int) {
	defer p.wg.Done()
	if !paced {
		return
	}
	last := initial
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		b, err := ptyBaud(p.slave)
		if err != nil || b == last || b <= 0 {
			continue
		}
		last = b
		p.host.SetBaud(b)
	}
}

// masterToCable carries what the host writes into the slave to the cable.
func (p *PTY) masterToCable() {
	defer p.wg.Done()
	buf := make([]byte, ptyBufSize)
	for {
		n, err := p.master.Read(buf)
		if n > 0 {
			if _, werr := p.host.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cableToMaster carries what crossed device→host to the slave's reader.
func (p *PTY) cableToMaster() {
	defer p.wg.Done()
	buf := make([]byte, ptyBufSize)
	for {
		n, err := p.host.Read(buf)
		if n > 0 {
			if _, werr := p.master.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// replaceSymlink points link at target, atomically replacing an existing
// symlink. It refuses to replace anything that is not a symlink.
func replaceSymlink(target, link string) error {
	fi, err := os.Lstat(link)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink == 0:
		return fmt.Errorf("uartemu: %s exists and is not a symlink; refusing to replace it (remove it or choose another link path)", link)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("uartemu: link %s: %w", link, err)
	}
	tmp := fmt.Sprintf("%s.tmp%d", link, os.Getpid())
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("uartemu: link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("uartemu: link %s: %w", link, err)
	}
	return nil
}

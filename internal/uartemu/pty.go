package uartemu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// ptyBufSize is the chunk the bridge moves between the pty and the cable.
const ptyBufSize = 4096

// PTY presents the host end of an emulated cable as a pseudo-terminal, so a
// program opens it by path like a USB-serial adapter while the test or the
// emulated device uses Device().
//
// Bytes the host writes into the slave are paced host→device and read from
// Device(); bytes written to Device() are paced device→host and then read by
// the host from the slave. The baud rate the host sets on the pty is
// ignored: the emulator paces at the Config's rates. Bytes the device sends
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
	p := &PTY{master: master, slave: slave, path: slave.Name()}
	if linkPath != "" {
		if err := replaceSymlink(p.path, linkPath); err != nil {
			master.Close()
			slave.Close()
			return nil, err
		}
		p.link = linkPath
	}
	p.host, p.device = New(cfg)
	p.wg.Add(2)
	go p.masterToCable()
	go p.cableToMaster()
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
		p.host.Close()
		errs = append(errs, p.master.Close())
		p.wg.Wait()
		errs = append(errs, p.slave.Close())
		p.device.Close()
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
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

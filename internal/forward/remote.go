package forward

import (
	"context"
	"net"
)

// remoteLoop keeps a listener open on the device until accepting stops:
// it listens, retrying with backoff while that fails (device not
// connected, say), serves the listener until its Accept fails (link
// lost, device rebooted), and starts over.
func (f *Forward) remoteLoop() {
	defer f.wg.Done()
	addr := f.cfg.Spec.ListenAddr()
	backoff := listenBackoffMin
	logged := "" // the failure reason last logged above debug, or away
	for {
		ctx, cancel := context.WithTimeout(f.acceptCtx, f.cfg.ConnectTimeout)
		ln, err := f.cfg.Listen(ctx, "tcp", addr)
		cancel()
		if err != nil {
			if f.acceptCtx.Err() != nil {
				return
			}
			reason := classify(err)
			kind := reason
			if reason == ReasonNoDevice || reason == ReasonTimeout {
				kind = away // waiting for a device to come back may time out
			}
			switch {
			case kind == logged:
				f.log.Debug().Str("reason", reason).Err(err).Dur("retry_in", backoff).Msg("cannot listen on the ESP32 yet")
			case kind == away:
				f.log.Info().Str("reason", reason).Err(err).Msg("waiting for the ESP32 to listen; retrying")
			default:
				f.log.Warn().Str("reason", reason).Err(err).Msg("cannot listen on the ESP32; retrying")
			}
			logged = kind
			if !f.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, listenBackoffMax)
			continue
		}
		if !f.setDevListener(ln) {
			ln.Close()
			return
		}
		f.log.Info().Stringer("device_addr", ln.Addr()).Msg("listening on the ESP32")
		err = f.acceptRemote(ln)
		f.clearDevListener()
		if f.acceptCtx.Err() != nil {
			return
		}
		f.log.Warn().Err(err).Msg("lost the listener on the ESP32; listening again when it is back")
		// The failures that follow a loss are expected; say so only when
		// they are something else.
		logged = away
		// Start the backoff over, but never listen again at once: a
		// listener that dies as soon as it opens must not spin the loop.
		backoff = listenBackoffMin
		if !f.sleep(backoff) {
			return
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// away stands for the failure reasons that mean the device is not there
// (yet), in remoteLoop's logging.
const away = "away"

// setDevListener records the open device listener so that Shutdown and
// Close can close it; false means accepting has stopped meanwhile.
func (f *Forward) setDevListener(ln net.Listener) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state != stateRunning {
		return false
	}
	f.devLn = ln
	f.listening.Store(true)
	return true
}

// clearDevListener closes the device listener and forgets it.
func (f *Forward) clearDevListener() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devLn != nil {
		f.devLn.Close()
		f.devLn = nil
	}
	f.listening.Store(false)
}

// acceptRemote serves connections the device listener accepts until
// Accept fails, and returns that error.
func (f *Forward) acceptRemote(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		f.take(c)
	}
}

package daemon

import (
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifier speaks sd_notify to systemd (Type=notify): READY once the
// listeners are up, STATUS when the device's state changes, WATCHDOG
// while the run loop turns, STOPPING and RELOADING around those events.
// Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
type notifier struct {
	enabled  bool
	watchdog time.Duration // ping interval: half of WatchdogSec; 0 = off
}

func newNotifier() notifier {
	n := notifier{enabled: true}
	if d, err := daemon.SdWatchdogEnabled(false); err == nil && d > 0 {
		n.watchdog = d / 2
	}
	return n
}

func (n notifier) send(state string) {
	if n.enabled {
		daemon.SdNotify(false, state)
	}
}

func (n notifier) ready(status string) { n.send(daemon.SdNotifyReady + "\nSTATUS=" + status) }
func (n notifier) status(s string)     { n.send("STATUS=" + s) }
func (n notifier) ping()               { n.send(daemon.SdNotifyWatchdog) }
func (n notifier) stopping()           { n.send(daemon.SdNotifyStopping) }

// reloading tells systemd a reload began; ready(...) ends it. systemd ≥ 253
// wants MONOTONIC_USEC with RELOADING=1 for Type=notify-reload; plain
// notify ignores it.
func (n notifier) reloading() {
	n.send(daemon.SdNotifyReloading + "\nMONOTONIC_USEC=" + monotonicUsec())
}

package appliance

import (
	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends systemd notify messages (READY=1, STATUS=..., WATCHDOG=1,
// STOPPING=1). Without NOTIFY_SOCKET it does nothing.
type Notifier interface {
	Notify(state string) error
}

// SystemdNotifier talks to $NOTIFY_SOCKET.
type SystemdNotifier struct{}

// Notify sends one state string; it is a no-op outside systemd.
func (SystemdNotifier) Notify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

type discardNotifier struct{}

func (discardNotifier) Notify(string) error { return nil }

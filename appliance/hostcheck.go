package appliance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/vishvananda/netlink"
)

// CheckHost checks a validated configuration against the node it is to
// run on: every interface it names exists, and the control socket path is
// free or holds a socket (a regular file there would otherwise be taken
// for a stale socket). `fwpaird -check` runs it, and so does every start,
// before anything is changed on the node. The errors name the key and
// the file.
func CheckHost(cfg *Config) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("%s: check interfaces: %w", cfg.File, err)
	}
	defer h.Close()
	return checkHost(cfg, func(name string) error {
		_, err := h.LinkByName(name)
		return err
	})
}

func checkHost(cfg *Config, linkExists func(string) error) error {
	var errs []error
	iface := func(key, name string) {
		if name == "" {
			return
		}
		if err := linkExists(name); err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				errs = append(errs, fmt.Errorf("%s: %s: interface %q does not exist on this node", cfg.File, key, name))
				return
			}
			errs = append(errs, fmt.Errorf("%s: %s: interface %q: %w", cfg.File, key, name, err))
		}
	}
	if v := cfg.VRRP; v != nil {
		for i, in := range v.Instances {
			iface(fmt.Sprintf("vrrp.instance[%d].interface", i), in.Interface)
			// The group's track_interfaces come first; they are checked
			// once, under their own key, below.
			for j, t := range in.TrackInterfaces[min(len(v.TrackInterfaces), len(in.TrackInterfaces)):] {
				iface(fmt.Sprintf("vrrp.instance[%d].track_interfaces[%d]", i, j), t)
			}
		}
		for j, t := range v.TrackInterfaces {
			iface(fmt.Sprintf("vrrp.track_interfaces[%d]", j), t)
		}
	}
	if s := cfg.Sync; s != nil {
		for i, l := range s.Channels {
			iface(fmt.Sprintf("sync.link[%d].interface", i), l.Interface)
		}
	}
	if err := checkSocketPath(cfg.Control.Socket); err != nil {
		errs = append(errs, fmt.Errorf("%s: control.socket: %w", cfg.File, err))
	}
	return errors.Join(errs...)
}

// checkSocketPath accepts a path that does not exist or holds a socket.
func checkSocketPath(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSocket == 0:
		return fmt.Errorf("%s exists and is not a socket (%s): fwpaird will not replace it", path, fi.Mode().Type())
	}
	return nil
}

package testenv

import (
	"fmt"
	"strings"
	"time"
)

// WithVRRPv3 writes a copy of a node config (etc/node1.toml style) that
// runs VRRPv3 at interval, with the VRRP threads under SCHED_RR at
// rtPriority (0: normal scheduling), and returns its path.
func WithVRRPv3(path, dir string, n int, interval time.Duration, rtPriority int) (string, error) {
	name := fmt.Sprintf("node%d-vrrpv3-%s.toml", n, interval)
	return rewriteConfig(path, dir, name, func(text string) (string, error) {
		if !strings.Contains(text, "\n[vrrp]\n") {
			return "", fmt.Errorf("no [vrrp] table")
		}
		if strings.Contains(text, "\nversion =") || strings.Contains(text, "\nrealtime_priority =") {
			return "", fmt.Errorf("vrrp.version or vrrp.realtime_priority already set")
		}
		n := strings.Count(text, "\nadvert_interval = ")
		if n == 0 {
			return "", fmt.Errorf("no advert_interval to replace")
		}
		lines := strings.Split(text, "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "advert_interval = ") {
				lines[i] = fmt.Sprintf("advert_interval = %q", interval.String())
			}
		}
		text = strings.Join(lines, "\n")
		return strings.Replace(text, "\n[vrrp]\n", fmt.Sprintf("\n[vrrp]\nversion = 3\nrealtime_priority = %d\n", rtPriority), 1), nil
	})
}

package appliance

import "time"

// VRRPv3 advert interval bounds (RFC 9568 §5.2.5: 12 bits of centiseconds).
const (
	minAdvertIntervalV3 = 10 * time.Millisecond
	maxAdvertIntervalV3 = 4095 * 10 * time.Millisecond
)

// advertInterval checks an instance's advert_interval against the VRRP
// version: whole seconds 1s..255s for v2, multiples of 10ms from 10ms to
// 40.95s for v3.
func (v *validator) advertInterval(key string, version int, d time.Duration) {
	switch version {
	case 3:
		if d < minAdvertIntervalV3 || d > maxAdvertIntervalV3 || d%(10*time.Millisecond) != 0 {
			v.errorf(key, "%s: VRRPv3 needs a multiple of 10ms from 10ms to 40.95s", d)
		}
	default:
		if d < time.Second || d%time.Second != 0 || d > maxAdvertIntervalV2Sec*time.Second {
			v.errorf(key, "%s: VRRPv2 needs whole seconds from 1s to 255s (sub-second adverts need version = 3)", d)
		}
	}
}

package vrrp

import "time"

// SkewTime returns RFC 3768 Skew_Time, (256 - priority) / 256 seconds.
// Higher priorities wait less, which is what elects the best backup.
func SkewTime(priority uint8) time.Duration {
	return time.Duration(256-int(priority)) * time.Second / 256
}

// MasterDownInterval returns RFC 3768 Master_Down_Interval,
// 3 * Advertisement_Interval + Skew_Time.
func MasterDownInterval(advertInterval time.Duration, priority uint8) time.Duration {
	return 3*advertInterval + SkewTime(priority)
}

// earliest returns the earlier of two deadlines, where the zero time means
// "no deadline".
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}

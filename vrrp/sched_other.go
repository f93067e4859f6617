//go:build !linux

package vrrp

import "errors"

func setRealtime(int) error { return errors.New("real-time scheduling is only supported on Linux") }

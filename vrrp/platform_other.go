//go:build !linux

package vrrp

import (
	"errors"
	"log/slog"
)

func newPlatform(string, Config, *slog.Logger) (platform, error) {
	return nil, errors.New("the default adapters need Linux; pass Options.Dialer, Addresser, Announcer and Links")
}

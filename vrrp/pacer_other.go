//go:build !linux

package vrrp

import "errors"

// pacer needs ppoll and eventfd; elsewhere the event loop sends every
// advert itself.
type pacer struct{ pacerCore }

// kslot is Linux's kernel-timed advert queue.
type kslot struct{}

func newPacer(*engine) (*pacer, error) {
	return nil, errors.New("advert pacer: only on Linux")
}

func (p *pacer) kick()           {}
func (p *pacer) run(func() bool) {}
func (p *pacer) close()          {}

package ctnetlink

// Test hooks for the external (ctnetlink_test) tests, which use
// ctnetlinktest and so cannot be part of the package.

// Listening reports whether Events has joined its groups' socket.
func (k *LinuxKernel) Listening() bool { return k.listening.Load() }

// AbandonDump starts a dump and reads only its first datagram, as a Dump
// cancelled by its context leaves the socket.
func (k *LinuxKernel) AbandonDump() error {
	k.dmu.Lock()
	defer k.dmu.Unlock()
	k.dseq++
	if err := k.d.send(nlAppendDumpRequest(nil, k.dseq)); err != nil {
		return err
	}
	if _, err := k.d.recv(make([]byte, 64<<10)); err != nil {
		return err
	}
	k.dumpPending = k.dseq
	return nil
}

// HasPorts is nlHasPorts.
func HasPorts(proto uint8) bool { return nlHasPorts(proto) }

package ctsync

import "github.com/fwpair/fwpair/ctsync/ctnetlink"

// The Linux adapters of ctsync/ctnetlink implement the engine's kernel
// interfaces, the optional ones it looks for included (a method renamed
// there would otherwise silently turn a feature off).
var (
	_ Kernel         = (*ctnetlink.LinuxKernel)(nil)
	_ ownRecorder    = (*ctnetlink.LinuxKernel)(nil)
	_ quietCommitter = (*ctnetlink.LinuxKernel)(nil)
	_ subscriber     = (*ctnetlink.LinuxKernel)(nil)
	_ ExpectKernel   = (*ctnetlink.LinuxExpect)(nil)
)

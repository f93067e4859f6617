package testenv

import "golang.org/x/sys/unix"

const errEADDRNOTAVAIL = unix.EADDRNOTAVAIL

// Package qemu is the QEMU lab: two firewall VMs running fwpaird, a client
// and a server, each with its own Debian cloud kernel booted under TCG from a
// small busybox initramfs, wired by QEMU socket netdevs on loopback. It
// builds the artefacts (Builder), runs the VMs (VM, with a QMP monitor and a
// control channel on a virtio-serial port) and runs the failover checks
// (Lab). The command is testenv/qemu/cmd/qemu-lab (make qemu-lab).
package qemu

# QEMU lab (testenv/qemu): two fwpaird firewall VMs, a client and a server,
# each with its own Debian cloud kernel under TCG. Included from the Makefile.
#   make qemu-lab                     busybox initramfs guests (about 2 minutes)
#   make qemu-lab QEMU_ROOT=systemd   systemd root filesystem guests
#   make qemu-lab QEMU_LAB_FLAGS=-smoke   boot and network checks only, no fwpaird
QEMU_ROOT      ?= busybox
QEMU_LAB_FLAGS ?=
QEMU_BUILD     ?= testenv/qemu/build

.PHONY: qemu-lab qemu-lab-clean

qemu-lab: ## boot fw1, fw2, client, server under QEMU and fail over (QEMU_ROOT=busybox|systemd)
	CGO_ENABLED=0 $(GO) build -o $(QEMU_BUILD)/qemu-lab ./testenv/qemu/cmd/qemu-lab
	$(QEMU_BUILD)/qemu-lab -root $(QEMU_ROOT) -build $(QEMU_BUILD) $(QEMU_LAB_FLAGS)

qemu-lab-clean: ## remove the QEMU lab's build folder (kernel, initramfs, rootfs)
	rm -rf $(QEMU_BUILD)

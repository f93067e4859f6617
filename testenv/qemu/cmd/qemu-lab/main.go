// Command qemu-lab boots the QEMU lab (two fwpaird firewalls, a client and a
// server under TCG), runs the election, traffic, sync and failover checks and
// prints "N passed, M failed" as its last line. Run it from the repository
// root as root (it installs missing Debian packages): make qemu-lab.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fwpair/fwpair/testenv/qemu"
)

func main() {
	root := flag.String("root", "busybox", "guest root: busybox (initramfs) or systemd (mmdebstrap rootfs)")
	build := flag.String("build", "testenv/qemu/build", "build folder (git-ignored)")
	smoke := flag.Bool("smoke", false, "only boot the VMs and check the network, without fwpaird")
	limit := flag.Duration("limit", 0, "time limit of every VM (default 5m, 15m with -root systemd)")
	keep := flag.Bool("keep", false, "leave the run folder (console logs) in place after success")
	flag.Parse()
	if *limit == 0 {
		*limit = 5 * time.Minute
		if *root == "systemd" {
			*limit = 15 * time.Minute
		}
	}
	os.Exit(run(*root, *build, *smoke, *limit, *keep))
}

func run(root, build string, smoke bool, limit time.Duration, keep bool) int {
	logf := func(format string, args ...any) { fmt.Printf("     "+format+"\n", args...) }
	fail := func(err error) int {
		fmt.Println("FAIL setup:", err)
		fmt.Println("0 passed, 1 failed")
		return 1
	}
	if root != "busybox" && root != "systemd" {
		return fail(fmt.Errorf("QEMU_ROOT=%s: want busybox or systemd", root))
	}
	repo, err := os.Getwd()
	if err != nil {
		return fail(err)
	}
	if _, err := os.Stat(filepath.Join(repo, "go.mod")); err != nil {
		return fail(fmt.Errorf("run me from the repository root: %w", err))
	}
	dir, err := filepath.Abs(build)
	if err != nil {
		return fail(err)
	}
	t0 := time.Now()
	pkgs := qemu.HostPackages
	if root == "systemd" {
		pkgs = append(pkgs, qemu.SystemdHostPackages...)
	}
	if err := qemu.EnsurePackages(logf, pkgs...); err != nil {
		return fail(err)
	}
	b := &qemu.Builder{Repo: repo, Dir: dir, Logf: logf}
	if err := b.Prepare(); err != nil {
		return fail(err)
	}
	k, err := b.Kernel()
	if err != nil {
		return fail(err)
	}
	bins, err := b.GoBinaries(!smoke)
	if err != nil {
		return fail(err)
	}
	initrd, err := b.Initramfs(k, bins)
	if err != nil {
		return fail(err)
	}
	var rootImg string
	if root == "systemd" {
		if smoke {
			return fail(fmt.Errorf("-smoke needs the busybox root (the systemd root runs fwpaird)"))
		}
		// The firewalls get fwpair from its Debian package (make deb's
		// script), and a higher version of it to test an upgrade.
		pk, err := b.DebPackages()
		if err != nil {
			return fail(err)
		}
		b.Packages = &pk
		if rootImg, err = b.SystemdImage(k, bins); err != nil {
			return fail(err)
		}
	}
	logf("kernel %s, initramfs %s, built in %.1fs", k.Version, initrd, time.Since(t0).Seconds())

	runDir := filepath.Join(dir, "run")
	qemu.KillStale(runDir, logf)
	_ = os.RemoveAll(runDir)
	lab := qemu.NewLab(k.Image(), initrd, runDir, limit, os.Stdout)
	if rootImg != "" {
		lab.UseSystemd(rootImg)
		lab.UsePackages(*b.Packages)
	}

	// Clean up on SIGINT/SIGTERM too; the VMs also die with this process
	// (parent-death signal) and at their time limit.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		lab.Stop()
		passed, failed := lab.Result()
		fmt.Printf("FAIL interrupted; console logs in %s\n%d passed, %d failed\n", runDir, passed, failed+1)
		os.Exit(130)
	}()
	defer lab.Stop()

	var times qemu.Times
	var boot time.Duration
	func() {
		var err error
		boot, err = lab.Boot(180 * time.Second)
		if !lab.Check(err == nil, "boot: four VMs ready", "%.1fs%s", boot.Seconds(), errText(err)) {
			return
		}
		lab.SmokeChecks()
		if !smoke {
			times = lab.Scenarios()
		}
	}()
	lab.Stop()
	passed, failed := lab.Result()
	if failed > 0 {
		logf("console logs kept in %s", runDir)
	} else if !keep {
		_ = os.RemoveAll(runDir)
	}
	logf("boot %.1fs (four VMs under TCG), election %.1fs", boot.Seconds(), times.Election.Seconds())
	for _, name := range []string{"graceful stop", "VM frozen", "VM powered off", "cable pull"} {
		if d, ok := times.Detect[name]; ok {
			logf("%-15s fw2 MASTER after %.2fs, traffic gap %dms; failback %.2fs, gap %dms",
				name, d.Seconds(), times.Gap[name].Milliseconds(), times.Failback[name].Seconds(), times.FailGap[name].Milliseconds())
		}
	}
	for _, tr := range times.Transfers {
		logf("%s", tr)
	}
	if times.Rebooted > 0 {
		logf("fw1 relaunch to ready %.1fs", times.Rebooted.Seconds())
	}
	logf("total %.1fs", time.Since(t0).Seconds())
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

func errText(err error) string {
	if err != nil {
		return ": " + err.Error()
	}
	return ""
}

// Command fwpaird is the fwpair daemon: VRRP and conntrack state sync for
// one node of a firewall pair, in one process.
//
//	fwpaird -c /etc/fwpair/fwpair.toml          run (foreground, logs to stderr)
//	fwpaird -check -c /etc/fwpair/fwpair.toml   validate the file, exit 0 or 1
//
// SIGTERM/SIGINT stop it gracefully (priority-0 adverts, VIPs removed);
// SIGHUP reloads the configuration.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fwpair/fwpair/appliance"
	"github.com/fwpair/fwpair/manpage"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// flags are fwpaird's command line; fwpaird(8) is generated from them.
type flags struct {
	configPath, socket, logFormat, manName *string
	check, offline, showVer                *bool
}

func newFlags(stderr io.Writer) (*flag.FlagSet, flags) {
	fs := flag.NewFlagSet("fwpaird", flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, flags{
		configPath: fs.String("c", "/etc/fwpair/fwpair.toml", "configuration `file`"),
		check:      fs.Bool("check", false, "validate the configuration, and check it against this node (interfaces, control socket path), then exit (0 valid, 1 invalid)"),
		offline:    fs.Bool("offline", false, "with -check: validate the file only, not against this node"),
		socket:     fs.String("socket", "", "control socket `path` (overrides control.socket)"),
		logFormat:  fs.String("log-format", "", "text or json (overrides log.format)"),
		showVer:    fs.Bool("version", false, "print the version and exit"),
		manName:    fs.String("manpage", "", "print the manual `page` fwpaird.8 or fwpair.toml.5 (roff) and exit"),
	}
}

func run(args []string, stderr io.Writer) int {
	fs, f := newFlags(stderr)
	configPath, check, socket, logFormat, showVer, manName := f.configPath, f.check, f.socket, f.logFormat, f.showVer, f.manName
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fwpaird: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *manName != "" {
		p, err := manPage(*manName, fs)
		if err == nil {
			err = manpage.Write(os.Stdout, p)
		}
		if err != nil {
			fmt.Fprintln(stderr, "fwpaird:", err)
			return 2
		}
		return 0
	}
	if *showVer {
		fmt.Fprintln(os.Stdout, "fwpaird", version)
		return 0
	}
	cfg, err := appliance.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *check {
		if *socket != "" {
			cfg.Control.Socket = *socket
		}
		if !*f.offline {
			if err := appliance.CheckHost(cfg); err != nil {
				fmt.Fprintln(stderr, err)
				return 1
			}
		}
		fmt.Fprintf(os.Stdout, "%s: ok\n", *configPath)
		return 0
	}
	if *logFormat != "" {
		if *logFormat != "text" && *logFormat != "json" {
			fmt.Fprintf(stderr, "fwpaird: -log-format %q is not text or json\n", *logFormat)
			return 2
		}
		cfg.Log.Format = *logFormat
	}
	level := new(slog.LevelVar)
	l, _ := appliance.ParseLevel(cfg.Log.Level)
	level.Set(l)
	log := slog.New(logHandler(stderr, cfg.Log.Format, level))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if cfg.VRRP != nil && cfg.VRRP.RealtimePriority > 0 {
		// One P more than the default: when the real-time VRRP threads
		// wake, Go code needs a free P, and on a busy host every P may be
		// held by a descheduled normal-priority thread (the sync engine's).
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	}

	// SIGHUP reloads: a task of the daemon, which stops listening first.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d, err := appliance.New(cfg, appliance.Options{
		Logger:   log,
		Level:    level,
		Registry: reg,
		Notifier: appliance.SystemdNotifier{},
		Version:  version,
		Socket:   *socket,
		// The daemon serves metrics.listen itself, as one of its tasks.
		Gatherer:   reg,
		ConfigPath: *configPath,
		Hangup:     hup,
	})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := d.Run(ctx); err != nil {
		log.Error("fwpaird failed", "err", err)
		return 1
	}
	return 0
}

// logHandler logs to stderr: text without timestamps under journald
// (which adds its own), JSON on request.
func logHandler(w io.Writer, format string, level *slog.LevelVar) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	if os.Getenv("JOURNAL_STREAM") != "" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.NewTextHandler(w, opts)
}

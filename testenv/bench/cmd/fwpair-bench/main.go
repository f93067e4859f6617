// Command fwpair-bench runs fwpair's benchmark (`make bench`): fwpaird
// against keepalived + conntrackd in the namespace lab, side by side. It
// prints a Markdown table and writes results/bench-<time>.json and
// results/failover-gap.svg. BENCH_SCALE=small runs the quick version. It
// needs root. With -svg-from results/bench-<time>.json it only redraws
// the chart of an earlier run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fwpair/fwpair/testenv"
	"github.com/fwpair/fwpair/testenv/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fwpair-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	svgFrom := flag.String("svg-from", "", "only redraw results/failover-gap.svg from a results/bench-*.json")
	flag.Parse()
	if *svgFrom != "" {
		return redraw(*svgFrom)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, nftables, conntrack)")
	}
	scale, err := bench.ScaleByName(os.Getenv("BENCH_SCALE"))
	if err != nil {
		return err
	}
	if stale := bench.RemoveStale(); len(stale) > 0 {
		fmt.Fprintf(os.Stderr, "removed %d namespaces left by an interrupted run\n", len(stale))
	}
	gomod, err := testenv.RepoFile("go.mod")
	if err != nil {
		return err
	}
	results := filepath.Join(filepath.Dir(gomod), "results")
	if err := os.MkdirAll(results, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "fwpair-bench-")
	if err != nil {
		return err
	}
	bin, err := testenv.Binaries(dir)
	if err != nil {
		return err
	}
	jan := &bench.Janitor{}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "fwpair-bench: %s scale; logs and configs in %s\n", scale.Name, dir)
	type outcome struct {
		res *bench.Results
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := bench.Run(bench.Options{Scale: scale, Bin: bin, Dir: dir, Log: os.Stderr, Janitor: jan})
		done <- outcome{res, err}
	}()
	var out outcome
	select {
	case out = <-done:
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "fwpair-bench: interrupted, cleaning up")
		jan.Close()
		// The run in progress fails fast once its resources are gone and
		// no new one starts; wait for it, bounded.
		select {
		case <-done:
		case <-time.After(time.Minute):
		}
		jan.Cleanup()
		bench.RemoveStale()
		return fmt.Errorf("interrupted (logs kept in %s)", dir)
	}
	jan.Cleanup()
	bench.RemoveStale()
	if out.err != nil {
		return fmt.Errorf("%w (logs kept in %s)", out.err, dir)
	}
	res := out.res
	res.Table(os.Stdout)
	stamp := res.Started.Format("20060102-150405")
	jsonPath := filepath.Join(results, "bench-"+stamp+".json")
	if err := res.WriteJSON(jsonPath); err != nil {
		return err
	}
	svgPath := filepath.Join(results, "failover-gap.svg")
	if err := res.WriteSVG(svgPath); err != nil {
		return err
	}
	fmt.Printf("\nraw figures: %s\nchart: %s\n", rel(jsonPath), rel(svgPath))
	if n := res.Errors(); n > 0 {
		// The table and files are written; the exit status still says
		// so, which is what keeps make test's small run from rotting.
		return fmt.Errorf("%d run(s) failed; logs kept in %s", n, dir)
	}
	os.RemoveAll(dir)
	return nil
}

// redraw writes the chart of an earlier run next to its JSON.
func redraw(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var res bench.Results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	out := filepath.Join(filepath.Dir(path), "failover-gap.svg")
	if err := res.WriteSVG(out); err != nil {
		return err
	}
	fmt.Println("chart:", rel(out))
	return nil
}

func rel(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, p); err == nil {
			return r
		}
	}
	return p
}

package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressState is what a foreground command has done so far: done of
// total items (total may grow while a backup lists), bytes moved, and a
// command-specific detail.
type progressState struct {
	done, total int64
	bytes       int64
	detail      string
}

// progressModes are what --progress takes ("tty" is the old name of bar).
var progressModes = []string{"auto", "bar", "plain", "none", "tty"}

func checkProgress(mode string) error {
	for _, m := range progressModes {
		if mode == m {
			return nil
		}
	}
	return usageErr("--progress %q: use auto, bar, plain or none", mode)
}

// progressFor settles auto for the terminal (or not) the command runs on:
// an operation the daemon runs shows progress on the caller's terminal.
func progressFor(mode string, w io.Writer) string {
	if mode != "auto" {
		return mode
	}
	if isTerminal(w) {
		return "bar"
	}
	return "plain"
}

// counter is the progress of a command that walks the storage: the
// application's Progress, shown in mode on w.
type counter struct {
	mu                 sync.Mutex
	done, total, bytes int64
	mode               string
	w                  io.Writer
	stop               func()
}

func newCounter(mode string, w io.Writer) *counter { return &counter{mode: mode, w: w} }

func (c *counter) Start(total int) {
	c.mu.Lock()
	c.total = int64(total)
	c.mu.Unlock()
	c.stop = startProgress(c.mode, c.w, c.state)
}

func (c *counter) Add(bytes int64) { c.add(bytes) }

func (c *counter) Stop() {
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
}

func (c *counter) add(bytes int64) {
	c.mu.Lock()
	c.done++
	c.bytes += bytes
	c.mu.Unlock()
}

func (c *counter) state() progressState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return progressState{done: c.done, total: c.total, bytes: c.bytes}
}

// startProgress shows progress until stop: a bar with items/s, MB/s and
// ETA on a terminal (bar), a line every few seconds otherwise (plain).
func startProgress(mode string, w io.Writer, snapshot func() progressState) (stop func()) {
	if mode == "auto" {
		mode = "plain"
		if isTerminal(w) {
			mode = "bar"
		}
	}
	if mode == "tty" {
		mode = "bar"
	}
	if mode == "none" {
		return func() {}
	}
	every := 5 * time.Second
	var bar *progressbar.ProgressBar
	if mode == "bar" {
		every = 200 * time.Millisecond
		bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(w), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("items"), progressbar.OptionSetPredictTime(true), progressbar.OptionSetWidth(24),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionShowDescriptionAtLineEnd())
	}
	start := time.Now()
	render := func() {
		s := snapshot()
		elapsed := time.Since(start).Seconds()
		mbps := float64(s.bytes) / 1e6 / max(elapsed, 1e-3)
		if bar != nil {
			if s.total > 0 {
				bar.ChangeMax64(s.total)
			}
			bar.Describe(fmt.Sprintf("%.1f MB/s  %s", mbps, s.detail))
			bar.Set64(s.done)
			return
		}
		fmt.Fprintln(w, progressLine(s, time.Since(start)))
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				render()
			case <-done:
				if bar != nil {
					render()
					bar.Finish()
					fmt.Fprintln(w)
				}
				return
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// progressLine is the plain form of the progress: elapsed time, items
// done of total, items/s, MB/s, the estimated time left, and the detail.
func progressLine(s progressState, elapsed time.Duration) string {
	secs := max(elapsed.Seconds(), 1e-3)
	rate := float64(s.done) / secs
	eta := "?"
	switch {
	case s.total > 0 && s.done >= s.total:
		eta = "0s"
	case s.total > s.done && rate > 0:
		eta = (time.Duration(float64(s.total-s.done)/rate) * time.Second).Round(time.Second).String()
	}
	line := fmt.Sprintf("%5.1fs  %d/%d items  %.1f items/s  %.1f MB/s  ETA %s", elapsed.Seconds(), s.done, s.total, rate, float64(s.bytes)/1e6/secs, eta)
	if s.detail != "" {
		line += "  " + s.detail
	}
	return line
}

// isTerminal tells whether w is a terminal: bars and colours are for
// people, never for files, pipes and log collectors.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/pipeline"
)

// Every number of a run's settings is bounded before it sizes goroutines,
// queues or requests: a value too big is refused, naming the flag.
func TestRunSettingsAreBounded(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*pipeline.Config)
		want string
	}{
		{"defaults", func(*pipeline.Config) {}, ""},
		{"batch", func(c *pipeline.Config) { c.BatchSize = 1_000_000 }, "--batch-size 1000000: at most 10000"},
		{"zero batch", func(c *pipeline.Config) { c.BatchSize = 0 }, "--batch-size must be at least 1"},
		{"workers", func(c *pipeline.Config) { c.Workers = 1 << 40 }, "--workers 1099511627776: at most 1024"},
		{"in flight", func(c *pipeline.Config) { c.Limits.MaxInFlight = 5000 }, "--max-in-flight 5000: at most 1024"},
		{"app in flight", func(c *pipeline.Config) { c.Limits.AppMaxInFlight = 5000 }, "--app-max-in-flight"},
		{"window", func(c *pipeline.Config) { c.Limits.WindowRequests = 1 << 31 }, "--window-requests"},
		{"app window", func(c *pipeline.Config) { c.Limits.AppWindowRequests = 1 << 31 }, "--app-window-requests"},
		{"folders", func(c *pipeline.Config) { c.FolderParallelism = 100_000 }, "--folder-parallelism"},
		{"largest allowed", func(c *pipeline.Config) { c.BatchSize, c.Workers, c.Limits.MaxInFlight = 10_000, 1024, 1024 }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := pipeline.DefaultConfig()
			cfg.Limits.AppWindow = time.Minute // the flag's default
			c.set(&cfg)
			err := validateRun(&cfg, &runOptions{progress: "none", format: "text"})
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

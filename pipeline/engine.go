package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/domain"
)

// Deps are the ports a run is wired to.
type Deps struct {
	Publisher message.Publisher
	// Subscriber returns a subscriber for a durable consumer group that may
	// hold maxInFlight unacknowledged messages.
	Subscriber func(group string, maxInFlight int) message.Subscriber
	Source     Source
	Storage    Storage
	Resume     ResumeIndex
	Dedup      Dedup
	Clock      Clock
	Log        zerolog.Logger
}

// Config is one run's settings.
type Config struct {
	Run string
	// SourceName is the source's identity (domain.SourceIdentity): the
	// storage keeps what each source backed up apart.
	SourceName string
	// StorageID and Scope name the storage and the resume state of the
	// run (projections.Scope).
	StorageID string
	Scope     string
	// Job names the backup job the run is a cycle of ("" for a backup by
	// hand).
	Job              string
	BatchSize        int
	ThrottlePatience time.Duration
	QuarantineRetry  time.Duration
	Limits           domain.Limits
	// FolderParallelism bounds the requests one folder has out at once; 0
	// takes the source's preference (see Pipelining), else 1.
	FolderParallelism int
	// TimeFilter, FolderFilter and ExcludeMailboxes select what a job backs
	// up (the zero values select everything).
	TimeFilter       domain.TimeFilter
	FolderFilter     domain.FolderFilter
	ExcludeMailboxes []string
	// Workers bounds the requests in flight across all mailboxes (with
	// Pace, pacedHandlersPerWorker times as many may wait for their pace).
	Workers int
	// StopGrace is how long a stop waits for in-flight requests.
	StopGrace time.Duration
	// Pace holds each mailbox's requests, and the app's, to the pace the
	// server grants (see Pacer); without it only the limits above pace the
	// run.
	Pace bool
}

// DefaultConfig holds the documented defaults.
// pacedHandlersPerWorker is how many fetcher handlers there are per
// worker when requests are paced: enough for a hundred mailboxes held to
// their paces while sixteen requests are in flight.
const pacedHandlersPerWorker = 8

func DefaultConfig() Config {
	return Config{BatchSize: 400, ThrottlePatience: 5 * time.Minute, QuarantineRetry: 24 * time.Hour,
		Limits: domain.DefaultLimits, Workers: 16, StopGrace: 30 * time.Second, Pace: true}
}

// discoveryParallelism is how many mailboxes discovery reads at once: as
// many as requests may be in flight, and never more than the app may have
// in flight (EWS counts an account's requests across its mailboxes).
func discoveryParallelism(cfg Config) int {
	n := max(1, cfg.Workers)
	if cfg.Limits.AppMaxInFlight > 0 {
		n = min(n, cfg.Limits.AppMaxInFlight)
	}
	return n
}

// ErrInterrupted is returned when a run was stopped before it finished.
var ErrInterrupted = errors.New("run interrupted")

// Run performs one backup run through the watermill router and returns its
// state. Cancelling ctx stops the run at a checkpoint: no new requests, the
// in-flight ones answered, open folders recorded as skipped with their
// cursors, and run_finished written.
func Run(ctx context.Context, d Deps, cfg Config) (domain.RunState, error) {
	if cfg.Run == "" {
		return "", errors.New("run id is empty")
	}
	if bl, ok := d.Source.(BatchLimit); ok && bl.MaxBatch() > 0 && cfg.BatchSize > bl.MaxBatch() {
		cfg.BatchSize = bl.MaxBatch()
	}
	if cfg.FolderParallelism == 0 {
		cfg.FolderParallelism = 1
		if pl, ok := d.Source.(Pipelining); ok && pl.FolderParallelism() > 0 {
			cfg.FolderParallelism = pl.FolderParallelism()
		}
	}
	var cost func(string, string, int) domain.RequestCost
	if cm, ok := d.Source.(CostModel); ok {
		cost = cm.RequestCost
	}
	wlog := watermill.NewSlogLogger(slog.New(zerolog.NewSlogHandler(d.Log.Level(zerolog.WarnLevel))))
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.StopGrace}, wlog)
	if err != nil {
		return "", fmt.Errorf("create router: %w", err)
	}

	// A handler error is an infrastructure failure (the log cannot be
	// written); retrying forever would hide it, so the run aborts instead.
	routerCtx, cancelRouter := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRouter()
	var abortOnce sync.Once
	var abortErr error
	// finishedRun: run_finished is in the log, the run's outcome settled. A
	// stage's output that can no longer be published after that (the
	// router closing under a handler still returning, a duplicate answer)
	// changes nothing and does not fail the run.
	var finishedRun atomic.Bool
	abort := func(err error) {
		if finishedRun.Load() {
			return
		}
		abortOnce.Do(func() {
			abortErr = err
			cancelRouter()
		})
	}
	router.AddMiddleware(func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) (out []*message.Message, err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic in stage: %v", r)
				}
				if err != nil && !errors.Is(err, context.Canceled) {
					abort(err)
				}
			}()
			return h(msg)
		}
	})

	// The router publishes a handler's output after the handler returns; if
	// that fails it would redeliver forever, so a failed publish aborts too.
	d.Publisher = abortingPublisher{Publisher: d.Publisher, abort: abort}

	trees, _ := d.Resume.(FolderTrees)
	var pacer *Pacer
	if cfg.Pace {
		memory, _ := d.Resume.(PaceMemory)
		pacer = NewPacer(d.Clock, memory)
	}
	if vc, ok := d.Storage.(VersionChecker); ok {
		// The storage, not the log, says whether a version is stored.
		d.Resume = storageConfirmed{ResumeIndex: d.Resume, storage: vc, source: cfg.SourceName}
	}
	reqT, outT := domain.RunRequestsTopic(cfg.Run), domain.RunOutcomesTopic(cfg.Run)
	fetcher := &Fetcher{Run: cfg.Run, SourceName: cfg.SourceName, FolderFilter: cfg.FolderFilter, ExcludeMailboxes: cfg.ExcludeMailboxes,
		DiscoveryParallelism: discoveryParallelism(cfg), Source: d.Source, Storage: d.Storage, Resume: d.Resume, Trees: trees, Dedup: d.Dedup,
		Pacer: pacer, Items: d.Publisher, Clock: d.Clock, Log: d.Log}
	wake := func(ev domain.Event) {
		m, err := encode(ev)
		if err == nil {
			err = d.Publisher.Publish(outT, m)
		}
		if err != nil {
			abort(fmt.Errorf("publish wake-up: %w", err))
		}
	}
	planner := NewPlanner(PlannerConfig{Run: cfg.Run, BatchSize: cfg.BatchSize, ThrottlePatience: cfg.ThrottlePatience,
		QuarantineRetry: cfg.QuarantineRetry, Limits: cfg.Limits, Backoff: domain.DefaultBackoff, Cost: cost,
		FolderParallelism: cfg.FolderParallelism, TimeFilter: cfg.TimeFilter}, d.Clock, d.Resume, d.Log, wake)
	defer planner.Close()

	group := func(stage string) string { return "run/" + cfg.Run + "/" + stage }
	handlers := max(1, cfg.Workers)
	if pacer != nil {
		// Requests wait for their mailbox's pace in the handlers, so there
		// are more handlers than requests may be in flight: Workers bounds
		// those through InFlight, and a mailbox held to its pace does not
		// hold a worker from another.
		fetcher.InFlight = make(chan struct{}, handlers)
		fetcher.Storing = make(chan struct{}, handlers)
		handlers *= pacedHandlersPerWorker
	}
	router.AddHandler("fetcher", reqT, d.Subscriber(group("fetcher"), handlers), outT, d.Publisher, fetcher.Handle)
	router.AddHandler("planner", outT, d.Subscriber(group("planner"), 1), reqT, d.Publisher, planner.Handle)
	finished := make(chan domain.RunState, 1)
	router.AddConsumerHandler("finisher", reqT, d.Subscriber(group("finisher"), 1), func(msg *message.Message) error {
		if msg.Metadata.Get(metaType) != string(domain.RunFinished) {
			return nil
		}
		ev, err := decode(msg)
		if err != nil {
			return err
		}
		finishedRun.Store(true)
		select {
		case finished <- domain.RunState(ev.State):
		default:
		}
		return nil
	})

	runErr := make(chan error, 1)
	go func() { runErr <- router.Run(routerCtx) }()
	select {
	case <-router.Running():
	case err := <-runErr:
		return "", fmt.Errorf("start pipeline: %w", err)
	}

	start := domain.Event{Type: domain.RunStarted, ID: domain.DeriveID("run", cfg.Run), Run: cfg.Run, Time: d.Clock.Now(),
		Config: &domain.RunConfig{Source: cfg.SourceName, Storage: cfg.StorageID, Scope: cfg.Scope, Job: cfg.Job, BatchSize: cfg.BatchSize, ThrottlePatienceS: int64(cfg.ThrottlePatience.Seconds()),
			QuarantineRetryS: int64(cfg.QuarantineRetry.Seconds()), MaxInFlight: cfg.Limits.MaxInFlight,
			WindowRequests: cfg.Limits.WindowRequests, WindowS: int64(cfg.Limits.Window.Seconds()), Pace: cfg.Pace}}
	if err := publish(d.Publisher, reqT, start); err != nil {
		cancelRouter()
		<-runErr
		return "", err
	}

	var state domain.RunState
	interrupted := false
	select {
	case state = <-finished:
	case <-routerCtx.Done():
	case <-ctx.Done():
		interrupted = true
		stop := domain.Event{Type: domain.StopRequested, ID: domain.DeriveID(cfg.Run, "stop"), Run: cfg.Run, Time: d.Clock.Now()}
		if err := publish(d.Publisher, outT, stop); err != nil {
			abort(err)
		}
		grace := time.NewTimer(cfg.StopGrace)
		select {
		case state = <-finished:
		case <-grace.C:
		case <-routerCtx.Done():
		}
		grace.Stop()
	}
	cancelRouter()
	if err := <-runErr; err != nil && abortErr == nil {
		abortErr = fmt.Errorf("pipeline: %w", err)
	}
	if abortErr != nil {
		return domain.StateNotFinished, abortErr
	}
	if state == "" {
		return domain.StateNotFinished, ErrInterrupted
	}
	if interrupted {
		return state, ErrInterrupted
	}
	return state, nil
}

func publish(p message.Publisher, topic string, ev domain.Event) error {
	m, err := encode(ev)
	if err != nil {
		return err
	}
	if err := p.Publish(topic, m); err != nil {
		return fmt.Errorf("publish %s: %w", ev.Type, err)
	}
	return nil
}

type abortingPublisher struct {
	message.Publisher
	abort func(error)
}

func (p abortingPublisher) Publish(topic string, msgs ...*message.Message) error {
	err := p.Publisher.Publish(topic, msgs...)
	if err != nil {
		p.abort(err)
	}
	return err
}

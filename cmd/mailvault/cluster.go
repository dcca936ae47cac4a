package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mailvault/mailvault/adapters/cluster"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/internal/app"
	"github.com/mailvault/mailvault/projections"
)

// clusterFlags say how to join a cluster.
type clusterFlags struct {
	urls, name string
	replicas   int
	workers    int
	ackWait    time.Duration
}

func (f *clusterFlags) register(fs *pflag.FlagSet, worker bool) {
	fs.StringVar(&f.urls, "cluster", "", "join the cluster on these NATS JetStream servers (nats://host:4222,nats://...)")
	host, _ := os.Hostname()
	fs.StringVar(&f.name, "cluster-name", fmt.Sprintf("%s-%d", host, os.Getpid()), "this process's name in the cluster")
	fs.IntVar(&f.replicas, "cluster-replicas", 3, "replicas of the cluster's streams (1 on a single NATS server)")
	fs.DurationVar(&f.ackWait, "cluster-ack-wait", 30*time.Second, "how long a mailbox stays with a worker that stopped answering before another takes it (set by the first process that makes the cluster's work queue; the others follow it)")
	if worker {
		fs.IntVar(&f.workers, "cluster-mailboxes", 4, "mailboxes this worker backs up at once")
	}
}

func (f clusterFlags) connect(ctx context.Context) (*cluster.Cluster, error) {
	if f.ackWait < 3*time.Second {
		return nil, usageErr("--cluster-ack-wait: at least 3s (heartbeats go every third of it)")
	}
	c, err := cluster.Connect(ctx, cluster.Options{URLs: f.urls, Name: f.name, Replicas: f.replicas, AckWait: f.ackWait})
	if err != nil {
		return nil, &exitError{code: exitErrors, err: err}
	}
	return c, nil
}

// clusterWorker takes mailbox tasks from the cluster's work queue and
// backs up each mailbox alone, as its job says (this process's own
// configuration: the same connections, storages and jobs on every
// worker; the storage an object storage they share).
type clusterWorker struct {
	g    *globalFlags
	lg   *eventlog.Log
	c    *cluster.Cluster
	name string
	// slots are the mailboxes this worker backs up at once.
	slots int
	log   zerolog.Logger
	wg    sync.WaitGroup
	// running holds the tasks this process is at (by task id), each with
	// a channel closed when its handler returns: a task delivered again
	// while its first delivery is still here (the heartbeats were lost
	// with a server) waits for it rather than running the mailbox twice
	// at once.
	running sync.Map
}

// start joins the cluster's live workers and runs a task loop per slot
// until ctx ends.
func (w *clusterWorker) start(ctx context.Context) (message.Subscriber, error) {
	if err := w.c.Join(ctx, w.slots); err != nil {
		return nil, err
	}
	sub := w.c.Tasks()
	for range w.slots {
		ch, err := sub.Subscribe(ctx, cluster.Topic)
		if err != nil {
			sub.Close()
			return nil, err
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for msg := range ch {
				w.handle(msg)
			}
		}()
	}
	return sub, nil
}

func (w *clusterWorker) handle(msg *message.Message) {
	ctx := msg.Context()
	var t cluster.Task
	if err := json.Unmarshal(msg.Payload, &t); err != nil {
		w.log.Error().Err(err).Str("task", msg.UUID).Msg("a task that does not read: dropped")
		msg.Ack()
		return
	}
	release, ok := w.claim(ctx, t)
	if !ok {
		if ctx.Err() == nil {
			msg.Ack()
		}
		return
	}
	defer release()
	taken := time.Now().UTC()
	run := app.NewRunID(taken)
	res := cluster.Result{Cycle: t.Cycle, Job: t.Job, Mailbox: t.Mailbox, Worker: w.name, Run: run, State: string(domain.StateNotFinished), Taken: taken}
	svc := newService(w.g, w.lg)
	svc.AppShare = func(ctx context.Context) int {
		n, err := w.c.Slots(ctx)
		if err != nil || n < w.slots {
			return w.slots // this worker's own slots at least
		}
		return n
	}
	rep, err := w.backup(ctx, svc, t, run)
	if ctx.Err() != nil {
		return // stopping: not acknowledged, another worker takes it
	}
	if rep != nil {
		res.State, res.ItemsScanned, res.ItemsStored, res.ItemsUnchanged, res.BytesWritten, res.Errors =
			string(rep.State), rep.ItemsScanned, rep.ItemsStored, rep.ItemsUnchanged, rep.BytesWritten, rep.Errors
		res.DurationS = rep.DurationS
		if rep.State == "" {
			res.State = string(domain.StateNotFinished)
		}
	}
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	// Publishing goes on while the process does (a server being
	// replaced), not past a minute.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := w.forward(pctx, t.Cycle, run); err != nil {
		w.log.Error().Err(err).Str("run", run).Msg("forward the run's events to the cluster")
		msg.Nack()
		return
	}
	res.Done = time.Now().UTC()
	if err := w.c.PublishResult(pctx, res); err != nil {
		w.log.Error().Err(err).Str("run", run).Msg("publish the mailbox's result")
		msg.Nack()
		return
	}
	msg.Ack()
}

// claim makes this handler the one that runs task t, unless t is done:
// another delivery of it in this process is waited for, and a result the
// cycle holds already for the mailbox makes this delivery a duplicate to
// acknowledge (a run again would be incremental, find nothing new and
// report a mailbox of nothing). If the results cannot be read, the
// mailbox runs: once more costs requests, never data. release ends the
// claim. Not ok: t is done, or ctx ended (the process is stopping).
func (w *clusterWorker) claim(ctx context.Context, t cluster.Task) (release func(), ok bool) {
	for {
		mine := make(chan struct{})
		other, busy := w.running.LoadOrStore(t.ID(), mine)
		if !busy {
			release = func() {
				w.running.Delete(t.ID())
				close(mine)
			}
			break
		}
		select {
		case <-other.(chan struct{}):
		case <-ctx.Done():
			return nil, false
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, done, err := w.c.ResultOf(rctx, t.Cycle, t.Mailbox)
	switch {
	case ctx.Err() != nil:
		release()
		return nil, false
	case err != nil:
		w.log.Warn().Err(err).Str("mailbox", t.Mailbox).Msg("the cycle's results do not read: the mailbox runs")
	case done:
		w.log.Info().Str("mailbox", t.Mailbox).Str("cycle", t.Cycle).Str("run", r.Run).Str("worker", r.Worker).
			Msg("a task delivered again is done already: acknowledged")
		release()
		return nil, false
	}
	return release, true
}

func (w *clusterWorker) backup(ctx context.Context, svc *app.Service, t cluster.Task, run string) (*projections.Report, error) {
	spec, err := svc.JobSpec(ctx, t.Job)
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", w.name, err)
	}
	job, err := spec.Job()
	if err != nil {
		return nil, err
	}
	if t.Mailbox == cluster.PublicFolders {
		job.Mailboxes, job.AllMailboxes, job.ExcludeMailboxes, job.Archives = nil, false, nil, false
	} else {
		job.Mailboxes, job.AllMailboxes, job.ExcludeMailboxes, job.PublicFolders = []string{t.Mailbox}, false, nil, nil
	}
	return svc.RunJobCycle(ctx, t.Job, job, run)
}

// forward sends a run's events to the cluster's event stream, each with
// its id as the message id.
func (w *clusterWorker) forward(ctx context.Context, cycle, run string) error {
	var batch []*message.Message
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := w.c.PublishEvents(ctx, cycle, batch)
		batch = batch[:0]
		return err
	}
	err := projections.ScanRun(w.lg, run, func(ev *domain.Event) error {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		batch = append(batch, message.NewMessage(ev.ID, b))
		if len(batch) == 256 {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// clusterReport is a cycle's report over its mailboxes' runs.
type clusterReport struct {
	Cycle     string `json:"cycle"`
	Job       string `json:"job"`
	State     string `json:"state"`
	Mailboxes int    `json:"mailboxes"`
	// PublicFolders counts the job's public folder selections, backed up
	// as one task (its result's mailbox is cluster.PublicFolders).
	PublicFolders int `json:"public_folders,omitempty"`
	// ItemsBackedUp are the items the mailboxes' last runs found stored:
	// stored by them, or found already stored (by a worker that died
	// after storing them, whose work the next run took over).
	ItemsBackedUp  int              `json:"items_backed_up"`
	ItemsScanned   int              `json:"items_scanned"`
	ItemsStored    int              `json:"items_stored"`
	ItemsUnchanged int              `json:"items_unchanged"`
	Workers        map[string]int   `json:"workers"`
	Errors         []string         `json:"errors,omitempty"`
	Results        []cluster.Result `json:"results"`
}

// coordinate runs one cycle of a job over the cluster: a task per mailbox
// on the work queue, then the workers' results.
func coordinate(ctx context.Context, svc *app.Service, c *cluster.Cluster, name string, job domain.Job) (*clusterReport, error) {
	mailboxes, err := svc.JobMailboxes(ctx, job)
	if err != nil {
		return nil, err
	}
	if len(job.PublicFolders) > 0 {
		mailboxes = append(mailboxes, cluster.PublicFolders)
	}
	cycle := strings.ReplaceAll(app.NewRunID(time.Now()), ".", "-")
	tasks := make([]cluster.Task, len(mailboxes))
	for i, m := range mailboxes {
		tasks[i] = cluster.Task{Cycle: cycle, Job: name, Mailbox: m}
	}
	if err := c.Enqueue(ctx, tasks); err != nil {
		return nil, err
	}
	results, err := c.Results(ctx, cycle, mailboxes)
	rep := &clusterReport{Cycle: cycle, Job: name, Mailboxes: len(mailboxes), State: string(domain.StateFinished), Workers: map[string]int{}}
	if len(job.PublicFolders) > 0 {
		rep.Mailboxes--
		rep.PublicFolders = len(job.PublicFolders)
	}
	rank := map[string]int{string(domain.StateFinished): 0, string(domain.StateWarnings): 1, string(domain.StateNotFinished): 2}
	for _, m := range mailboxes {
		r, ok := results[m]
		if !ok {
			rep.State = string(domain.StateNotFinished)
			rep.Errors = append(rep.Errors, taskName(m)+": no worker answered")
			continue
		}
		rep.Results = append(rep.Results, r)
		rep.ItemsScanned += r.ItemsScanned
		rep.ItemsStored += r.ItemsStored
		rep.ItemsUnchanged += r.ItemsUnchanged
		rep.Workers[r.Worker]++
		for _, e := range r.Errors {
			rep.Errors = append(rep.Errors, taskName(m)+": "+e)
		}
		if rank[r.State] > rank[rep.State] {
			rep.State = r.State
		}
	}
	rep.ItemsBackedUp = rep.ItemsStored + rep.ItemsUnchanged
	sort.Slice(rep.Results, func(i, j int) bool { return rep.Results[i].Mailbox < rep.Results[j].Mailbox })
	return rep, err
}

// taskName names a task's mailbox in messages.
func taskName(mailbox string) string {
	if mailbox == cluster.PublicFolders {
		return "public folders"
	}
	return mailbox
}

func writeClusterReport(w io.Writer, format string, r *clusterReport) error {
	if format == "json" {
		return json.NewEncoder(w).Encode(r)
	}
	fmt.Fprintf(w, "cycle %s of job %s: %s\n  mailboxes       %d\n", r.Cycle, r.Job, r.State, r.Mailboxes)
	if r.PublicFolders > 0 {
		fmt.Fprintf(w, "  public folders  %d selection(s), one task\n", r.PublicFolders)
	}
	fmt.Fprintf(w, "  items backed up %d (stored %d, found stored %d)\n  items scanned   %d\n",
		r.ItemsBackedUp, r.ItemsStored, r.ItemsUnchanged, r.ItemsScanned)
	names := make([]string, 0, len(r.Workers))
	for n := range r.Workers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  worker %s: %d tasks\n", n, r.Workers[n])
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	return nil
}

func newClusterCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Run backup cycles over a cluster of workers (NATS JetStream)"}
	var f clusterFlags
	var format string
	var timeout time.Duration
	run := &cobra.Command{Use: "run JOB --cluster nats://...", Short: "Run one cycle of a job on the cluster's workers and print its report", Args: cobra.ExactArgs(1),
		Long: `Put one task per mailbox of the job on the cluster's work queue and wait until every
mailbox has a result from a worker (mailvault daemon --cluster ...). A worker that dies gives its
mailbox to another after --cluster-ack-wait; the storage (an object storage every worker shares)
holds each item once. Exit 0 when the cycle finished, 1 when not.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.urls == "" {
				return usageErr("--cluster nats://... is required")
			}
			if err := checkFormat(format, "text", "json"); err != nil {
				return err
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			c, err := f.connect(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			return withService(g, func(svc *app.Service) error {
				spec, err := svc.JobSpec(ctx, args[0])
				if err != nil {
					return err
				}
				job, err := spec.Job()
				if err != nil {
					return err
				}
				rep, err := coordinate(ctx, svc, c, args[0], job)
				if rep != nil {
					if werr := writeClusterReport(cmd.OutOrStdout(), format, rep); werr != nil {
						return werr
					}
				}
				if err != nil {
					return &exitError{code: exitErrors, err: fmt.Errorf("cycle of job %s: %w", args[0], err)}
				}
				if rep.State == string(domain.StateNotFinished) {
					return &exitError{code: exitErrors, err: fmt.Errorf("cycle %s of job %s not finished", rep.Cycle, args[0])}
				}
				return nil
			})
		}}
	f.register(run.Flags(), false)
	run.Flags().StringVar(&format, "format", "text", "report format: text or json")
	run.Flags().DurationVar(&timeout, "timeout", 0, "give up waiting for the workers after this long (0: wait)")
	cmd.AddCommand(run)
	return cmd
}

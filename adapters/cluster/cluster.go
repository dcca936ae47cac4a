// Package cluster runs mailvault on several machines over NATS JetStream,
// through watermill's NATS Pub/Sub: a backup cycle's work is one message
// per mailbox on a replicated work-queue stream, held by one worker at a
// time (so a mailbox's request budget holds across workers) and given to
// another when its worker dies (its heartbeats stop); each mailbox run's
// events and result go to a replicated stream, with the events'
// deterministic ids as message ids, so a message published twice (a
// worker retrying after a lost acknowledgement) is kept once.
package cluster

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	workStream   = "MAILVAULT_WORK"
	workSubject  = "mailvault.work"
	eventStream  = "MAILVAULT_EVENTS"
	workConsumer = "mailvault-workers"
	// dedupWindow is how long JetStream remembers a message id.
	dedupWindow = 30 * time.Minute
)

// Options say how to join the cluster.
type Options struct {
	// URLs are the NATS servers, comma-separated (nats://host:4222,...).
	URLs string
	// Name names this process to the others (its worker id).
	Name string
	// Replicas of each stream: 3 on a cluster of three servers or more
	// (a server can die without losing anything), 1 on a single server.
	Replicas int
	// AckWait is how long a mailbox stays with a worker that stopped
	// sending heartbeats before another worker gets it.
	AckWait time.Duration
}

// Cluster is a connection to the cluster's NATS servers.
type Cluster struct {
	opts    Options
	ackWait time.Duration // the work queue's, which the first process set
	nc      *nats.Conn
	js      jetstream.JetStream
	pub     message.Publisher
	closed  sync.Once
}

// Connect joins the cluster and makes its streams where they are missing.
func Connect(ctx context.Context, o Options) (*Cluster, error) {
	if o.URLs == "" {
		return nil, errors.New("cluster: no NATS server given")
	}
	for _, u := range strings.Split(o.URLs, ",") {
		if !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
			return nil, fmt.Errorf("cluster: %q is not a nats:// or tls:// address", Redacted(u))
		}
	}
	if o.Replicas <= 0 {
		o.Replicas = 3
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	nc, err := nats.Connect(o.URLs, nats.Name("mailvault "+o.Name), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(false))
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to %s: %w", Redacted(o.URLs), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c := &Cluster{opts: o, nc: nc, js: js, ackWait: o.AckWait}
	if err := c.provision(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	// watermill's NATS publisher, JetStream on: the message's UUID (the
	// deterministic id) goes out as Nats-Msg-Id.
	c.pub, err = wmnats.NewPublisherWithNatsConn(nc, wmnats.PublisherPublishConfig{
		Marshaler:         &wmnats.NATSMarshaler{},
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
		JetStream:         wmnats.JetStreamConfig{TrackMsgId: true},
	}, watermill.NopLogger{})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return c, nil
}

func (c *Cluster) provision(ctx context.Context) error {
	streams := []jetstream.StreamConfig{
		{Name: workStream, Subjects: []string{workSubject}, Retention: jetstream.WorkQueuePolicy, Replicas: c.opts.Replicas,
			Duplicates: dedupWindow, MaxAge: 7 * 24 * time.Hour, Storage: jetstream.FileStorage},
		{Name: eventStream, Subjects: []string{"mailvault.events.>", "mailvault.results.>"}, Replicas: c.opts.Replicas,
			Duplicates: dedupWindow, MaxAge: 90 * 24 * time.Hour, Storage: jetstream.FileStorage},
	}
	for _, sc := range streams {
		if err := retry(ctx, func(ctx context.Context) error {
			_, err := c.js.CreateOrUpdateStream(ctx, sc)
			return err
		}); err != nil {
			return fmt.Errorf("cluster: stream %s: %w", sc.Name, err)
		}
	}
	// The work queue's consumer is made once, by the first to come, and
	// never changed by the others: every worker heartbeats a third of its
	// ack wait, whatever its own flag says, so that a worker's task is
	// never given to another while it works on it.
	var cons jetstream.Consumer
	err := retry(ctx, func(ctx context.Context) (err error) {
		cons, err = c.js.Consumer(ctx, workStream, workConsumer)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			cons, err = c.js.CreateConsumer(ctx, workStream, jetstream.ConsumerConfig{Durable: workConsumer, AckPolicy: jetstream.AckExplicitPolicy,
				AckWait: c.opts.AckWait, MaxDeliver: -1, MaxAckPending: 100000, Replicas: c.opts.Replicas})
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: consumer %s: %w", workConsumer, err)
	}
	if w := cons.CachedInfo().Config.AckWait; w > 0 {
		c.ackWait = w
	}
	return nil
}

// AckWait is the work queue's: how long a task stays with a worker that
// stopped its heartbeats.
func (c *Cluster) AckWait() time.Duration { return c.ackWait }

// apiTimeout bounds one JetStream API request: a request sent while the
// servers choose a new leader (one of them died) gets no answer, and is
// sent again.
const apiTimeout = 5 * time.Second

// retry runs fn, each try bounded by apiTimeout, until it succeeds or ctx
// ends (then the last error says why).
func retry(ctx context.Context, fn func(context.Context) error) error {
	for {
		tctx, cancel := context.WithTimeout(ctx, apiTimeout)
		err := fn(tctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Close leaves the cluster.
func (c *Cluster) Close() {
	c.closed.Do(func() { c.nc.Close() })
}

// Task is one mailbox of a backup cycle.
type Task struct {
	Cycle   string `json:"cycle"`
	Job     string `json:"job"`
	Mailbox string `json:"mailbox"`
}

// PublicFolders is the Mailbox of the task that backs up a job's public
// folders (one task for all of them: their tree is one unit, and Exchange
// holds them in few mailboxes). It is no address, so no mailbox's task
// takes its id.
const PublicFolders = "#public-folders"

// ID is the task's message id: a cycle enqueued twice holds each mailbox
// once.
func (t Task) ID() string { return "task/" + t.Cycle + "/" + t.Mailbox }

// publish sends msgs to topic one by one, each again until the cluster
// takes it or ctx ends: a message sent while a server died may have been
// stored or not, and its id makes a second copy a duplicate JetStream
// drops.
func (c *Cluster) publish(ctx context.Context, topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		for {
			err := c.pub.Publish(topic, m)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	return nil
}

// Enqueue puts a cycle's tasks on the work queue.
func (c *Cluster) Enqueue(ctx context.Context, tasks []Task) error {
	msgs := make([]*message.Message, 0, len(tasks))
	for _, t := range tasks {
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		msgs = append(msgs, message.NewMessage(t.ID(), b))
	}
	if err := c.publish(ctx, workSubject, msgs...); err != nil {
		return fmt.Errorf("cluster: enqueue: %w", err)
	}
	return nil
}

// Result is what one mailbox's run of a cycle did.
type Result struct {
	Cycle          string `json:"cycle"`
	Job            string `json:"job"`
	Mailbox        string `json:"mailbox"`
	Worker         string `json:"worker"`
	Run            string `json:"run"`
	State          string `json:"state"`
	ItemsScanned   int    `json:"items_scanned"`
	ItemsStored    int    `json:"items_stored"`
	ItemsUnchanged int    `json:"items_unchanged"`
	BytesWritten   int64  `json:"bytes_written"`
	// Taken and Done are when the worker took the task and when it had
	// forwarded the run's events (its result follows); DurationS is the
	// mailbox run's own length (from its report).
	Taken     time.Time `json:"taken"`
	Done      time.Time `json:"done"`
	DurationS float64   `json:"duration_s"`
	Errors    []string  `json:"errors,omitempty"`
}

func cycleToken(cycle string) (string, error) {
	if cycle == "" || strings.ContainsAny(cycle, ".*> \t\r\n") {
		return "", fmt.Errorf("cluster: cycle id %q cannot be a subject token", cycle)
	}
	return cycle, nil
}

// PublishEvents sends a mailbox run's events (each a message whose UUID
// is the event's id) to the cycle's event subject.
func (c *Cluster) PublishEvents(ctx context.Context, cycle string, events []*message.Message) error {
	tok, err := cycleToken(cycle)
	if err != nil {
		return err
	}
	if err := c.publish(ctx, "mailvault.events."+tok, events...); err != nil {
		return fmt.Errorf("cluster: publish events: %w", err)
	}
	return nil
}

// PublishResult sends a mailbox run's result.
func (c *Cluster) PublishResult(ctx context.Context, r Result) error {
	tok, err := cycleToken(r.Cycle)
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	// One result per task, the first published: a worker given a task
	// again (its acknowledgement or heartbeats were lost with a server)
	// asks ResultOf before it runs, and a run by another worker that
	// was at it meanwhile is a duplicate JetStream drops.
	if err := c.publish(ctx, resultSubject(tok, r.Mailbox), message.NewMessage("result/"+r.Cycle+"/"+r.Mailbox, b)); err != nil {
		return fmt.Errorf("cluster: publish result: %w", err)
	}
	return nil
}

// Results waits for a result of each of the cycle's mailboxes and
// returns them. It asks the replicated stream directly, each request
// bounded (a consumer of its own would die with the server it was
// placed on): which of the cycle's result subjects exist, then the
// result on each new one.
func (c *Cluster) Results(ctx context.Context, cycle string, mailboxes []string) (map[string]Result, error) {
	tok, err := cycleToken(cycle)
	if err != nil {
		return nil, err
	}
	want := map[string]string{} // subject -> mailbox
	for _, m := range mailboxes {
		want[resultSubject(tok, m)] = m
	}
	out := map[string]Result{}
	for len(out) < len(want) {
		var stream jetstream.Stream
		var info *jetstream.StreamInfo
		err := retry(ctx, func(ctx context.Context) (err error) {
			if stream, err = c.js.Stream(ctx, eventStream); err != nil {
				return err
			}
			info, err = stream.Info(ctx, jetstream.WithSubjectFilter("mailvault.results."+tok+".>"))
			return err
		})
		if err != nil {
			return out, fmt.Errorf("cluster: read results: %w", err)
		}
		for subj := range info.State.Subjects {
			m, ok := want[subj]
			if _, done := out[m]; !ok || done {
				continue
			}
			gctx, cancel := context.WithTimeout(ctx, apiTimeout)
			raw, err := stream.GetLastMsgForSubject(gctx, subj)
			cancel()
			var r Result
			if err == nil && json.Unmarshal(raw.Data, &r) == nil {
				out[m] = r
			}
		}
		if len(out) < len(want) {
			select {
			case <-ctx.Done():
				return out, ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
	return out, nil
}

// ResultOf returns the result a cycle holds for a mailbox, if any: a
// task delivered again after its first run ended (the acknowledgement or
// the heartbeats were lost with a server) is done already, and its
// result is the first run's (JetStream keeps the first of a task's
// results and drops the others as duplicates).
func (c *Cluster) ResultOf(ctx context.Context, cycle, mailbox string) (Result, bool, error) {
	tok, err := cycleToken(cycle)
	if err != nil {
		return Result{}, false, err
	}
	var raw *jetstream.RawStreamMsg
	err = retry(ctx, func(ctx context.Context) error {
		stream, err := c.js.Stream(ctx, eventStream)
		if err != nil {
			return err
		}
		raw, err = stream.GetLastMsgForSubject(ctx, resultSubject(tok, mailbox))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			raw, err = nil, nil
		}
		return err
	})
	if err != nil || raw == nil {
		if err != nil {
			err = fmt.Errorf("cluster: read the result of %s: %w", mailbox, err)
		}
		return Result{}, false, err
	}
	var r Result
	if err := json.Unmarshal(raw.Data, &r); err != nil {
		return Result{}, false, fmt.Errorf("cluster: the result of %s does not read: %w", mailbox, err)
	}
	return r, true, nil
}

// resultSubject is where a mailbox's result of a cycle goes (the address
// in hex: its dots are subject separators).
func resultSubject(cycleTok, mailbox string) string {
	return "mailvault.results." + cycleTok + "." + hex.EncodeToString([]byte(mailbox))
}

// Tasks is the work queue as a watermill Subscriber: each Subscribe
// takes one task at a time, keeps it with heartbeats while the handler
// works, and acknowledges it when the handler acks (nack: it goes back,
// to be taken again after a pause).
func (c *Cluster) Tasks() message.Subscriber {
	return &taskSubscriber{c: c, closing: make(chan struct{})}
}

type taskSubscriber struct {
	c       *Cluster
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

func (s *taskSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic != workSubject {
		return nil, fmt.Errorf("cluster: tasks come on %s, not %s", workSubject, topic)
	}
	var cons jetstream.Consumer
	if err := retry(ctx, func(ctx context.Context) (err error) {
		cons, err = s.c.js.Consumer(ctx, workStream, workConsumer)
		return err
	}); err != nil {
		return nil, fmt.Errorf("cluster: the work queue's consumer: %w", err)
	}
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		for ctx.Err() == nil && !s.isClosing() {
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				select {
				case <-ctx.Done():
				case <-s.closing:
				case <-time.After(500 * time.Millisecond): // a server gone: try another
				}
				continue
			}
			for m := range batch.Messages() {
				s.deliver(ctx, m, out)
			}
		}
	}()
	return out, nil
}

func (s *taskSubscriber) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// deliver hands one task to the handler and holds it until the handler
// acks or nacks; a task left unanswered (the process is stopping) is not
// acknowledged, so another worker gets it.
func (s *taskSubscriber) deliver(ctx context.Context, m jetstream.Msg, out chan<- *message.Message) {
	wm := message.NewMessage(m.Headers().Get(wmnats.WatermillUUIDHdr), m.Data())
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wm.SetContext(mctx)
	select {
	case out <- wm:
	case <-ctx.Done():
		return
	case <-s.closing:
		return
	}
	beat := time.NewTicker(s.c.ackWait / 3)
	defer beat.Stop()
	for {
		select {
		case <-wm.Acked():
			// The acknowledgement is confirmed by the server; if it is
			// lost (a server died), the task comes again and the next
			// run of it stores nothing twice.
			_ = m.DoubleAck(context.WithoutCancel(ctx))
			return
		case <-wm.Nacked():
			_ = m.NakWithDelay(5 * time.Second)
			return
		case <-beat.C:
			_ = m.InProgress()
		case <-ctx.Done():
			return
		}
	}
}

func (s *taskSubscriber) Close() error {
	s.once.Do(func() { close(s.closing) })
	s.wg.Wait()
	return nil
}

// Topic is the subject tasks come on.
const Topic = workSubject

const workersBucket = "MAILVAULT_WORKERS"

// Join registers this worker, with how many mailboxes it backs up at
// once, in the cluster's key-value bucket of live workers, and keeps the
// entry alive until ctx ends: the bucket's entries expire when their
// worker stops refreshing them. The tenant-wide (per-app) budget is
// shared by the live workers' slots (Slots).
func (c *Cluster) Join(ctx context.Context, slots int) error {
	var kv jetstream.KeyValue
	if err := retry(ctx, func(ctx context.Context) (err error) {
		kv, err = c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: workersBucket, TTL: 3 * c.ackWait, Replicas: c.opts.Replicas})
		return err
	}); err != nil {
		return fmt.Errorf("cluster: the workers' bucket: %w", err)
	}
	key := workerKey(c.opts.Name)
	val := []byte(fmt.Sprint(slots))
	put := func() error {
		pctx, cancel := context.WithTimeout(ctx, apiTimeout)
		defer cancel()
		_, err := kv.Put(pctx, key, val)
		return err
	}
	if err := put(); err != nil {
		return fmt.Errorf("cluster: register worker %s: %w", c.opts.Name, err)
	}
	go func() {
		t := time.NewTicker(c.ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				dctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
				_ = kv.Delete(dctx, key)
				cancel()
				return
			case <-t.C:
				_ = put() // a server gone: the next tick tries again
			}
		}
	}()
	return nil
}

// Slots sums the live workers' mailbox slots: the share of a tenant-wide
// budget one mailbox run may use is the budget over this.
func (c *Cluster) Slots(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	kv, err := c.js.KeyValue(ctx, workersBucket)
	if err != nil {
		return 0, err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue // expired between the listing and the read
		}
		var n int
		if _, err := fmt.Sscan(string(e.Value()), &n); err == nil && n > 0 {
			total += n
		}
	}
	return total, nil
}

// workerKey makes a worker's name a key-value key.
func workerKey(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return "w." + string(b)
}

// Redacted is a list of server addresses fit for a log or a message: a
// user and password (or token) in an address are replaced.
func Redacted(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		scheme, rest, ok := strings.Cut(u, "://")
		if !ok {
			continue
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			parts[i] = scheme + "://REDACTED@" + rest[at+1:]
		}
	}
	return strings.Join(parts, ",")
}

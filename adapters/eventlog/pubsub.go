package eventlog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Publisher is a watermill Publisher that appends to the log. All messages of
// one Publish call are committed atomically; a message whose UUID is already in
// the log is dropped, so publishing the output of a re-processed message again
// is harmless.
type Publisher struct {
	log    *Log
	closed atomic.Bool
}

// Publisher returns a watermill Publisher on the log.
func (l *Log) Publisher() *Publisher { return &Publisher{log: l} }

// Publish implements message.Publisher.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if p.closed.Load() {
		return errors.New("publisher is closed")
	}
	if topic == "" {
		return errors.New("publish: empty topic")
	}
	recs := make([]Record, len(msgs))
	for i, m := range msgs {
		recs[i] = Record{Topic: topic, UUID: m.UUID, Metadata: maps.Clone(m.Metadata), Payload: m.Payload}
	}
	if _, err := p.log.Append(context.Background(), recs); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// Close implements message.Publisher. It does not close the log.
func (p *Publisher) Close() error {
	p.closed.Store(true)
	return nil
}

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// ConsumerGroup names the durable cursor. Subscriptions of the same group
	// and topic share the work and the cursor, in this process and across
	// restarts. Empty means "default".
	ConsumerGroup string
	// MaxInFlight is how many unacknowledged messages one subscription may
	// hold (like JetStream's MaxAckPending). 1, the default, delivers in order
	// and waits for each ack.
	MaxInFlight int
}

// Subscriber is a watermill Subscriber reading from the log with durable,
// per-consumer-group cursors. Delivery is at least once: a message that was
// not acknowledged before a crash or a Close is delivered again.
type Subscriber struct {
	log *Log
	cfg SubscriberConfig

	mu     sync.Mutex
	closed bool
	cancel []context.CancelFunc
	wg     sync.WaitGroup
}

// Subscriber returns a watermill Subscriber on the log.
func (l *Log) Subscriber(cfg SubscriberConfig) *Subscriber {
	if cfg.ConsumerGroup == "" {
		cfg.ConsumerGroup = "default"
	}
	if cfg.MaxInFlight < 1 {
		cfg.MaxInFlight = 1
	}
	return &Subscriber{log: l, cfg: cfg}
}

// Subscribe implements message.Subscriber.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("subscriber is closed")
	}
	c, err := s.log.acquireConsumer(s.cfg.ConsumerGroup, topic)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s.cancel = append(s.cancel, cancel)
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer s.log.releaseConsumer(c)
		s.deliver(ctx, c, out)
	}()
	return out, nil
}

// Close implements message.Subscriber: it closes every subscription's channel;
// unacknowledged messages are delivered again later.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, c := range s.cancel {
		c()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Subscriber) deliver(ctx context.Context, c *consumer, out chan<- *message.Message) {
	slots := make(chan struct{}, s.cfg.MaxInFlight)
	var acks sync.WaitGroup
	defer acks.Wait()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		changed := s.log.Changed()
		rec, ok, err := c.claim()
		if err != nil {
			// A corrupt entry must not be skipped silently: stop delivering
			// and leave the cursor before it. Readers of the log report it.
			<-slots
			<-ctx.Done()
			return
		}
		if !ok {
			<-slots
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		msg := message.NewMessage(rec.UUID, rec.Payload)
		for k, v := range rec.Metadata {
			msg.Metadata.Set(k, v)
		}
		msgCtx, cancelMsg := context.WithCancel(ctx)
		msg.SetContext(msgCtx)
		select {
		case out <- msg:
		case <-ctx.Done():
			cancelMsg()
			c.nack(rec.Seq)
			return
		}
		acks.Add(1)
		go func(seq uint64) {
			defer acks.Done()
			defer cancelMsg()
			defer func() { <-slots }()
			select {
			case <-msg.Acked():
				c.ack(seq)
			case <-msg.Nacked():
				c.nack(seq)
			case <-ctx.Done():
				// Acked and closed can race; an ack that made it counts.
				select {
				case <-msg.Acked():
					c.ack(seq)
				default:
					c.nack(seq)
				}
			}
		}(rec.Seq)
		if s.cfg.MaxInFlight == 1 {
			// Strict order: wait for this message before reading the next.
			select {
			case slots <- struct{}{}:
				<-slots
			case <-ctx.Done():
				return
			}
		}
	}
}

// consumer is the shared state of one consumer group on one topic.
type consumer struct {
	log   *Log
	key   []byte
	topic string
	refs  int

	mu        sync.Mutex
	floor     uint64 // every message of the topic up to floor is acknowledged
	durable   uint64 // the floor last written to the log
	wroteAt   time.Time
	next      uint64 // highest seq handed out so far
	inflight  map[uint64]bool
	redeliver []uint64 // sorted
	failed    error
}

func (l *Log) acquireConsumer(group, topic string) (*consumer, error) {
	l.consumersMu.Lock()
	defer l.consumersMu.Unlock()
	name := group + "\x00" + topic
	if c, ok := l.consumers[name]; ok {
		c.refs++
		return c, nil
	}
	key := append([]byte("c/"), name...)
	floor, err := l.readCursor(key)
	if err != nil {
		return nil, fmt.Errorf("read cursor of %s on %s: %w", group, topic, err)
	}
	c := &consumer{log: l, key: key, topic: topic, refs: 1, floor: floor, durable: floor, next: floor, inflight: map[uint64]bool{}}
	l.consumers[name] = c
	return c, nil
}

func (l *Log) releaseConsumer(c *consumer) {
	l.consumersMu.Lock()
	defer l.consumersMu.Unlock()
	c.refs--
	if c.refs > 0 {
		return
	}
	// Last subscription gone: write the cursor where the acknowledgements
	// left it, and forget in-memory state; the next subscription starts
	// again from the durable cursor.
	c.mu.Lock()
	c.persist(true)
	c.mu.Unlock()
	delete(l.consumers, string(c.key[2:]))
}

func (c *consumer) claim() (Record, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed != nil {
		return Record{}, false, c.failed
	}
	if len(c.redeliver) > 0 {
		seq := c.redeliver[0]
		c.redeliver = c.redeliver[1:]
		rec, err := c.log.Get(seq)
		if err != nil {
			c.failed = err
			return Record{}, false, err
		}
		c.inflight[seq] = true
		return rec, true, nil
	}
	rec, ok, err := c.log.next(Topic(c.topic), c.next)
	if err != nil {
		c.failed = err
		return Record{}, false, err
	}
	if !ok {
		return Record{}, false, nil
	}
	c.next = rec.Seq
	c.inflight[rec.Seq] = true
	return rec, true, nil
}

func (c *consumer) ack(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inflight[seq] {
		return
	}
	delete(c.inflight, seq)
	c.advance()
}

func (c *consumer) nack(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inflight[seq] {
		return
	}
	delete(c.inflight, seq)
	i, _ := slices.BinarySearch(c.redeliver, seq)
	c.redeliver = slices.Insert(c.redeliver, i, seq)
}

// advance moves the durable cursor to just below the oldest message still
// unacknowledged.
func (c *consumer) advance() {
	floor := c.next
	for s := range c.inflight {
		if s-1 < floor {
			floor = s - 1
		}
	}
	if len(c.redeliver) > 0 && c.redeliver[0]-1 < floor {
		floor = c.redeliver[0] - 1
	}
	if floor <= c.floor {
		return
	}
	c.floor = floor
	c.persist(false)
}

// cursorEvery is how often at most a consumer's cursor is written while its
// subscription lives. Writing it at every acknowledgement cost a Badger
// transaction per message and a version of the key per message in the
// log's tables (most of the bytes a run without changes added); a cursor
// that is behind only means messages delivered again after a crash, which
// consumers tolerate by design.
var cursorEvery = 250 * time.Millisecond

// persist writes the cursor if it moved and, unless forced, if the last
// write is older than cursorEvery.
func (c *consumer) persist(force bool) {
	if c.floor <= c.durable {
		return
	}
	now := time.Now()
	if !force && now.Sub(c.wroteAt) < cursorEvery {
		return
	}
	if err := c.log.writeCursor(c.key, c.floor); err != nil {
		// The cursor stays behind: at worst messages are delivered again.
		return
	}
	c.durable, c.wroteAt = c.floor, now
}

// Transport is the log as a pipeline's watermill transport: its publisher,
// and a subscriber per durable consumer group holding at most maxInFlight
// unacknowledged messages.
func (l *Log) Transport() (message.Publisher, func(group string, maxInFlight int) message.Subscriber) {
	return l.Publisher(), func(group string, n int) message.Subscriber {
		return l.Subscriber(SubscriberConfig{ConsumerGroup: group, MaxInFlight: n})
	}
}

package eventlog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// TestCursorIsWrittenSparinglyAndOnRelease: acknowledgements move the
// cursor in memory; the log gets it at most every cursorEvery and when the
// last subscription of its group ends, so a new subscription of the group
// continues after everything acknowledged.
func TestCursorIsWrittenSparinglyAndOnRelease(t *testing.T) {
	defer func(d time.Duration) { cursorEvery = d }(cursorEvery)
	cursorEvery = time.Hour
	l, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const topic, group, n = "work", "g", 50
	for i := 0; i < n; i++ {
		if err := l.Publisher().Publish(topic, message.NewMessage(fmt.Sprintf("m%02d", i), []byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	key := []byte("c/" + group + "\x00" + topic)
	subscribe := func(maxInFlight int) (*Subscriber, <-chan *message.Message) {
		t.Helper()
		sub := l.Subscriber(SubscriberConfig{ConsumerGroup: group, MaxInFlight: maxInFlight})
		ch, err := sub.Subscribe(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		return sub, ch
	}
	consume := func(want int) {
		t.Helper()
		sub, ch := subscribe(4)
		for i := 0; i < want; i++ {
			(<-ch).Ack()
		}
		// While the subscription lives the cursor was written once, at the
		// first acknowledgement; the rest waits for cursorEvery.
		if want > 1 {
			seq, err := l.readCursor(key)
			if err != nil {
				t.Fatal(err)
			}
			if seq >= uint64(want) {
				t.Errorf("cursor written at %d while the subscription lives, want once only", seq)
			}
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
	}
	consume(30)
	if seq, err := l.readCursor(key); err != nil || seq != 30 {
		t.Fatalf("cursor after the subscription ended: %d, %v; want 30", seq, err)
	}
	// The next subscription of the group gets the 20 left, and nothing again.
	sub, ch := subscribe(1)
	m := <-ch
	if m.UUID != "m30" {
		t.Fatalf("next subscription starts at %s, want m30", m.UUID)
	}
	m.Ack()
	sub.Close()
}

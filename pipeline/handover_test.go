package pipeline

import (
	"context"
	"errors"
	"testing"
)

// A fetch's request slot goes to the next request once its answer is read,
// the batch storing meanwhile under a place of its own; with every such
// place taken, the slot is kept until one frees (the storage is behind).
func TestHandOverFreesTheSlotWhileTheBatchIsStored(t *testing.T) {
	ctx := context.Background()
	f := &Fetcher{InFlight: make(chan struct{}, 1), Storing: make(chan struct{}, 1)}
	var first permit
	if err := f.slot(ctx, &first); err != nil {
		t.Fatal(err)
	}
	if err := f.handOver(ctx, &first, true); err != nil {
		t.Fatal(err)
	}
	if len(f.InFlight) != 0 || len(f.Storing) != 1 {
		t.Fatalf("after the hand-over: %d in flight, %d storing; want 0 and 1", len(f.InFlight), len(f.Storing))
	}
	var second permit
	if err := f.slot(ctx, &second); err != nil { // the next request goes while the first batch is stored
		t.Fatal(err)
	}
	handed := make(chan error, 1)
	go func() { handed <- f.handOver(ctx, &second, true) }()
	select {
	case err := <-handed:
		t.Fatalf("the second batch was handed over (%v) while the first held the only storing place", err)
	default:
	}
	first.release() // the first batch is stored
	if err := <-handed; err != nil {
		t.Fatal(err)
	}
	if len(f.InFlight) != 0 || len(f.Storing) != 1 {
		t.Fatalf("after the second hand-over: %d in flight, %d storing; want 0 and 1", len(f.InFlight), len(f.Storing))
	}
	second.release()

	// Nothing left to store: the slot goes, no place is taken.
	var third permit
	if err := f.slot(ctx, &third); err != nil {
		t.Fatal(err)
	}
	if err := f.handOver(ctx, &third, false); err != nil || len(f.InFlight) != 0 || len(f.Storing) != 0 {
		t.Fatalf("%v: %d in flight, %d storing", err, len(f.InFlight), len(f.Storing))
	}
	third.release()

	// Shutting down while waiting for a place: the slot is still held, and
	// released with the permit.
	f.Storing <- struct{}{}
	var fourth permit
	if err := f.slot(ctx, &fourth); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.handOver(cancelled, &fourth, true); !errors.Is(err, context.Canceled) || len(f.InFlight) != 1 {
		t.Fatalf("%v with %d in flight", err, len(f.InFlight))
	}
	fourth.release()
	if len(f.InFlight) != 0 {
		t.Fatal("the permit did not give its slot back")
	}
}

// Without a bound on storing, a fetch keeps its slot until its batch is
// stored, as before.
func TestHandOverWithoutStoringPlacesKeepsTheSlot(t *testing.T) {
	ctx := context.Background()
	f := &Fetcher{InFlight: make(chan struct{}, 1)}
	var p permit
	if err := f.slot(ctx, &p); err != nil {
		t.Fatal(err)
	}
	if err := f.handOver(ctx, &p, true); err != nil || len(f.InFlight) != 1 {
		t.Fatalf("%v with %d in flight", err, len(f.InFlight))
	}
	p.release()
}

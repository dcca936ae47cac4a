package eventlog_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/mailvault/mailvault/adapters/eventlog"
)

// TestPubSub runs watermill's own Pub/Sub suite against the Badger log.
// Every constructor call shares one log, as every process of a data directory
// shares its files.
func TestPubSub(t *testing.T) {
	log, err := eventlog.Open(eventlog.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	features := tests.Features{
		ConsumerGroups:                      true,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
		NewSubscriberReceivesOldMessages:    false,
	}
	tests.TestPubSub(t, features,
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return log.Publisher(), log.Subscriber(eventlog.SubscriberConfig{})
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			return log.Publisher(), log.Subscriber(eventlog.SubscriberConfig{ConsumerGroup: group})
		},
	)
}
